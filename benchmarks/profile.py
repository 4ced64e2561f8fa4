"""Where the time goes: per-op-type time of one unit of work, from TensorFlow's profiler.

  python benchmarks/profile.py --preset o55 --what meta      # faithful meta-iteration
  python benchmarks/profile.py --preset m55 --what many      # 16 evaluation tasks at once
  (--what: meta, parallel, single, many)

Traces `--calls` calls after two warm-up calls and sums, per op type, the
durations of the op events in the trace (`XSpace` from
`tf.profiler.experimental`), per call. Ops run on several threads at once, so
the sum can exceed the wall time. The convolution ops are also shown as
GFLOP/s, using benchmarks/flops.py's count for their share (forward: conv
layers; filter gradients: the same; input gradients: all conv layers but the
first), next to the matmul rate measured in the same process.
"""

import argparse
import collections
import glob
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def op_times(logdir: str, by_node: str | None = None) -> collections.Counter:
    """Op type -> total ms of its events in the newest trace under `logdir`
    (with `by_node`: node name -> total ms of the events of that op type)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    total = collections.Counter()
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" in name:  # op events are named "<node name>:<op type>"
                    node, op = name.rsplit(":", 1)
                    if by_node is None:
                        total[op] += event.duration_ps / 1e9
                    elif op == by_node:
                        total[node] += event.duration_ps / 1e9
    return total


def _conv_flops(model, examples: int) -> dict:
    import flops
    convs = [f for name, f in flops.forward_flops_per_layer(model) if "conv" in name]
    return {"Conv2D": examples * sum(convs), "BackpropFilter": examples * sum(convs),
            "BackpropInput": examples * sum(convs[1:])}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="o55")
    p.add_argument("--what", choices=("meta", "parallel", "single", "many"), default="meta")
    p.add_argument("--calls", type=int, default=3)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--repo", default=os.path.dirname(HERE))
    p.add_argument("--by-node", metavar="OP_TYPE",
                   help="also break this op type's time down by node name")
    p.add_argument("--grappler-off", default="", metavar="NAMES",
                   help="grappler optimizers to turn off, comma-separated, e.g. 'remapping' "
                   "(names as tf.config.optimizer.set_experimental_options takes them)")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path[:0] = [os.path.abspath(args.repo), HERE]
    import tensorflow as tf
    tf.config.optimizer.set_experimental_options(
        {name: False for name in filter(None, args.grappler_off.split(","))})
    import bench
    import flops
    from supervised_reptile.config import Config
    from supervised_reptile.presets import PRESETS
    dataset, overrides = PRESETS[args.preset]
    config = Config.from_flat(dataset=dataset, **overrides)
    ns = argparse.Namespace(modes="parallel,many", eval_tasks_at_once=16)
    fns, algorithm = bench._callables(config, ns)
    kind = "eval_" + ("transductive" if config.task.transductive else "nontransductive")
    fn = fns[{"meta": "meta", "parallel": "parallel", "single": kind + "_single",
              "many": kind + "_many"}[args.what]]
    fn(), fn()
    logdir = tempfile.mkdtemp(prefix="profile_")
    start = time.perf_counter()
    tf.profiler.experimental.start(logdir)
    for _ in range(args.calls):
        fn()
    tf.profiler.experimental.stop()
    wall = (time.perf_counter() - start) * 1000 / args.calls
    times = op_times(logdir)
    ops = {k: v / args.calls for k, v in times.items()
           if k not in ("Process", "Run") and not k.startswith(" ")}
    total = sum(ops.values())
    if args.what in ("meta", "parallel"):
        examples = config.meta.meta_batch * config.inner.inner_iters * config.inner.inner_batch
    else:
        examples = (config.eval.eval_iters * config.eval.eval_batch
                    * (16 if args.what == "many" else 1))
    conv = _conv_flops(algorithm.model, examples)
    gflops = flops.matmul_gflops(2048)
    print(f"{args.preset} {args.what}: {wall:.1f} ms per call (traced), op time {total:.1f} ms; "
          f"matmul {gflops:.0f} GFLOP/s")
    for op, ms in sorted(ops.items(), key=lambda kv: -kv[1])[:args.top]:
        rate = next((f" {conv[k] / ms / 1e6:6.1f} GFLOP/s (inner steps)" for k in conv
                     if op.endswith(k) or op.endswith(k + "WithBias")
                     or (k == "Conv2D" and op.endswith("FusedConv2D"))), "")
        print(f"{op:45s} {ms:8.2f} ms {100 * ms / total:5.1f}%{rate}")
    if args.by_node:
        print(f"{args.by_node} by node:")
        for node, ms in op_times(logdir, args.by_node).most_common(args.top):
            print(f"  {node[-90:]:90s} {ms / args.calls:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
