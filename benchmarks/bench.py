"""Speed of the paper commands against the machine's FLOP limit: JSON and a table.

Run by hand (not part of the test suite):
  python benchmarks/bench.py --json after.json --table after.md     # o55, o520, m55
  python benchmarks/bench.py --presets all --iters 30                # the 8 paper commands
  python benchmarks/bench.py --repo /path/to/old/checkout --json before.json

Per preset (each in its own subprocess, so peak memory and compile times are
its own): ms per meta-iteration (faithful, and `--parallel-tasks`), ms per
evaluation task (transductive and not; one by one as the monitoring
evaluation runs, and `--eval-tasks-at-once` at a time as the final
evaluation; reported per task), the first call's time ("compile": tracing + graph
optimisation + one run), peak RSS, the FLOPs of each (benchmarks/flops.py),
and the float32 matmul GFLOP/s measured in the same process; "x limit" is
time / (FLOPs / GFLOP/s). All callables are timed interleaved (round-robin),
so load from other processes hits them alike; each reports its minimum
(interference only adds time) and median. Data are random pixels in the real
shapes: no dataset is needed. With `--repo` the package is imported from that
checkout (e.g. `git worktree add /tmp/before <commit>`), for a before/after
table; what an old checkout lacks is reported as null.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROW_KEYS = ("meta", "parallel", "eval_nontransductive_single", "eval_nontransductive_many",
            "eval_transductive_single", "eval_transductive_many")
PAPER_SPLITS = {"omniglot": 2, "miniimagenet": 3}  # splits of the final evaluation


def _interleaved(fns: dict, warmup: int, iters: int) -> dict:
    """name -> {compile_s, min_ms, median_ms}: first calls, then round-robin timing."""
    out = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        out[name] = {"compile_s": round(time.perf_counter() - start, 2)}
    times = {name: [] for name in fns}
    for r in range(warmup + iters):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            if r >= warmup:
                times[name].append((time.perf_counter() - start) * 1000)
    for name, t in times.items():
        out[name].update(min_ms=round(min(t), 2), median_ms=round(statistics.median(t), 2))
    return out


def synthetic_pool(dataset: str, rng):
    """Random pixels in the dataset's shape: 100 (Omniglot) or 20 (Mini-ImageNet) classes."""
    from supervised_reptile.data.class_pool import ClassPool
    import numpy as np
    if dataset == "omniglot":
        images = (rng.random((100, 20, 28, 28)) < 0.9).astype(np.uint8) * 255
    else:
        images = rng.integers(0, 256, (20, 30, 84, 84, 3), dtype=np.uint8)
    return ClassPool(images, np.full(len(images), images.shape[1], np.int32),
                     tuple(map(str, range(len(images)))))


def _callables(config, args) -> tuple[dict, object]:
    """name -> zero-argument callable running one unit of work; and the algorithm."""
    import numpy as np
    from supervised_reptile import episodes, evaluate
    from supervised_reptile.build import build_algorithm, task_specs
    pool = synthetic_pool(config.data.dataset, np.random.default_rng(0))
    train_spec, eval_spec = task_specs(config)
    algorithm = build_algorithm(config)
    tasks = iter(episodes.train_dataset(pool, train_spec, 0, config.meta.meta_batch))
    fns = {"meta": lambda: algorithm.meta_step(next(tasks), 0.5)["inner_loss"].numpy()}
    if "parallel" in args.modes:
        par = type(algorithm)(type(algorithm.model).from_config(algorithm.model.get_config()),
                              type(algorithm.optimizer)(config.inner.learning_rate),
                              weight_decay=config.inner.weight_decay, schedule="at-once")
        fns["parallel"] = lambda: par.meta_step(next(tasks), 0.5)["inner_loss"].numpy()
    evals = iter(episodes.eval_dataset(pool, eval_spec, 0, episodes.FINAL_EVAL_STREAM))
    at_once = args.eval_tasks_at_once
    for transductive in (False, True):
        ev = type(algorithm)(algorithm.model, algorithm.optimizer,
                             weight_decay=config.inner.weight_decay, transductive=transductive)
        kind = "eval_" + ("transductive" if transductive else "nontransductive")
        fns[kind + "_single"] = lambda ev=ev: ev.adapt_and_predict(next(evals)).numpy()
        if "many" in args.modes:
            fns[kind + "_many"] = lambda ev=ev: evaluate.evaluate(ev, evals, at_once, at_once)
    return fns, algorithm


def _flops(config, algorithm) -> dict:
    import flops
    import tensorflow as tf
    model = algorithm.model
    out = {"meta": flops.meta_iteration_flops(model, config.meta.meta_batch,
                                              config.inner.inner_iters, config.inner.inner_batch)}
    out["parallel"] = out["meta"]
    for transductive in (False, True):
        kind = "eval_" + ("transductive" if transductive else "nontransductive")
        out[kind + "_single"] = out[kind + "_many"] = flops.eval_task_flops(
            model, config.eval.eval_iters, config.eval.eval_batch, config.task.classes,
            config.task.shots, transductive)
    # Cross-check: TensorFlow's count of one inner step's graph (elementwise ops included).
    try:
        weights = [tf.identity(v) for v in model.trainable_variables]
        frozen = [tf.identity(v) for v in model.non_trainable_variables]
        x = tf.zeros([config.inner.inner_batch, *model.input_shape[1:]])
        y = tf.zeros([config.inner.inner_batch], tf.int32)
        step = tf.function(lambda w, s, x, y: algorithm.inner.step(
            algorithm.one_task, w, frozen, s, x, y)[2])
        out["check_step_analytic"] = flops.step_flops(model, config.inner.inner_batch)
        out["check_step_tf_profiler"] = flops.graph_flops(
            step, weights, algorithm.inner_state(), x, y)
    except Exception as e:  # noqa: BLE001 -- a cross-check only
        out["check_error"] = repr(e)[:200]
    return out


def worker(preset: str, args) -> dict:
    """Measures one preset in this process; returns its row."""
    import tensorflow as tf
    if args.device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    if args.intra_op:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    tf.config.experimental.enable_tensor_float_32_execution(False)  # honest float32
    import flops
    from supervised_reptile.config import Config
    from supervised_reptile.presets import PRESETS
    gpu = bool(tf.config.list_logical_devices("GPU"))
    size = 8192 if gpu else 2048
    gflops_before = flops.matmul_gflops(size)
    dataset, overrides = PRESETS[preset]
    config = Config.from_flat(dataset=dataset, **overrides,
                              eval_tasks_at_once=args.eval_tasks_at_once)
    fns, algorithm = _callables(config, args)
    timing = _interleaved(fns, args.warmup, args.iters)
    for name, t in timing.items():  # a "_many" call evaluates `eval_tasks_at_once` tasks
        if name.endswith("_many"):
            t.update(min_ms=round(t["min_ms"] / args.eval_tasks_at_once, 2),
                     median_ms=round(t["median_ms"] / args.eval_tasks_at_once, 2))
    gflops = max(gflops_before, flops.matmul_gflops(size))
    counts = _flops(config, algorithm)
    row = {"preset": preset, "dataset": dataset, "device": "gpu" if gpu else "cpu",
           "matmul_gflops": round(gflops, 1), "eval_tasks_at_once": args.eval_tasks_at_once,
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "flops": counts, "timing": timing, "x_limit": {}}
    for name, t in timing.items():  # time over the time the FLOPs take at the matmul rate
        row["x_limit"][name] = round(t["min_ms"] / (counts[name] / gflops / 1e6), 2)
    row["projected_hours"] = _projection(config, timing)
    return row


def _projection(config, timing: dict) -> dict:
    """Hours of the whole paper command: training, monitoring (one task per
    monitored split every `eval_interval` iterations, one by one) and the
    final evaluation (`eval_samples` per split; at once where measured)."""
    kind = "eval_" + ("transductive" if config.task.transductive else "nontransductive")
    monitor = (timing[kind + "_single"]["min_ms"] * 2 * config.meta.meta_iters
               / config.eval.eval_interval)
    final_ms = timing.get(kind + "_many", timing[kind + "_single"])["min_ms"]
    final = final_ms * config.eval.eval_samples * PAPER_SPLITS[config.data.dataset]
    out = {}
    for mode in ("meta", "parallel"):
        if mode in timing:
            out[mode] = round((timing[mode]["min_ms"] * config.meta.meta_iters + monitor + final)
                              / 3.6e6, 2)
    return out


TABLE = [("meta-iter ms min/med", "meta"), ("parallel ms min/med", "parallel"),
         ("eval 1-by-1 ms", "eval_nontransductive_single"),
         ("eval at once ms", "eval_nontransductive_many"),
         ("eval transd. 1-by-1 ms", "eval_transductive_single"),
         ("eval transd. at once ms", "eval_transductive_many")]


def table(rows: list[dict]) -> str:
    """A Markdown table: each time as `min/median (x limit)`."""
    head = ["preset", "GFLOP/s"] + [h for h, _ in TABLE] + [
        "compile s", "peak MB", "GFLOP meta/eval", "projected h (faithful/parallel)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["preset"], str(r["matmul_gflops"])]
        for _, key in TABLE:
            t = r["timing"].get(key)
            cells.append("-" if t is None else
                         f"{t['min_ms']:.0f}/{t['median_ms']:.0f} ({r['x_limit'][key]}x)")
        f = r["flops"]
        cells += [str(r["timing"]["meta"]["compile_s"]), str(r["peak_rss_mb"]),
                  f"{f['meta'] / 1e9:.2f}/{f['eval_nontransductive_single'] / 1e9:.2f}",
                  "/".join(str(v) for v in r["projected_hours"].values())]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="o55,o520,m55",
                   help="comma-separated preset names, or 'all' (the 8 paper commands)")
    p.add_argument("--iters", type=int, default=20, help="timed rounds per figure")
    p.add_argument("--warmup", type=int, default=3, help="untimed rounds after the first calls")
    p.add_argument("--modes", default="parallel,many",
                   help="optional measurements: parallel (meta-training), many (evaluation)")
    p.add_argument("--eval-tasks-at-once", type=int, default=16)
    p.add_argument("--device", choices=("auto", "cpu"), default="auto",
                   help="auto: the GPU where TensorFlow sees one")
    p.add_argument("--intra-op", type=int, default=0, help="intra-op threads (0: TF's default)")
    p.add_argument("--inter-op", type=int, default=0, help="inter-op threads (0: TF's default)")
    p.add_argument("--repo", default=os.path.dirname(HERE),
                   help="checkout whose supervised_reptile package is measured")
    p.add_argument("--json", help="write {meta, rows} here")
    p.add_argument("--table", help="write the Markdown table here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path[:0] = [os.path.abspath(args.repo), HERE]
    if args.worker:
        print("ROW " + json.dumps(worker(args.worker, args)))
        return 0
    from supervised_reptile.presets import PRESETS
    names = list(PRESETS) if args.presets == "all" else args.presets.split(",")
    rows = []
    for name in names:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name] + (argv or sys.argv[1:])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("ROW ")]
        if proc.returncode or not lines:
            raise RuntimeError(f"preset {name} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(lines[-1][4:]))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    commit = subprocess.run(["git", "-C", args.repo, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    meta = {"repo": os.path.abspath(args.repo), "commit": commit, "machine": platform.machine(),
            "cpus": os.cpu_count(), "load_average_after": os.getloadavg(), "args": vars(args)}
    text = table(rows)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
    if args.table:
        with open(args.table, "w") as f:
            f.write(f"commit {commit}, {os.cpu_count()} CPUs, load {os.getloadavg()}\n\n"
                    + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
