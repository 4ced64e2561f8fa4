"""Meta-iterations per second: 1 vs 2 logical CPU devices, 1 vs 2 worker processes.

Omniglot 5-way, the paper's training settings (5 tasks of 5 Adam steps on
batches of 10), synthetic images. Each variant runs in its own processes
(logical devices and TF_CONFIG must be set before TensorFlow starts).

  python benchmarks/bench_distribute.py [--iters 50] [--json out.json]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {"1 device": ("none", 1, 1), "2 logical CPU devices": ("mirrored", 2, 1),
            "1 worker process": ("multi-worker", 1, 1),
            "2 worker processes": ("multi-worker", 1, 2)}


def _worker(kind: str, cpu_devices: int, iters: int) -> None:
    """Runs in a child process: prints ms per meta-iteration as JSON."""
    sys.path.insert(0, REPO)
    import numpy as np
    from supervised_reptile import distribute, episodes, models, optimizers
    from supervised_reptile.algorithms import Reptile
    from supervised_reptile.data.class_pool import ClassPool

    strategy = distribute.make_strategy(kind, cpu_devices)
    rng = np.random.default_rng(0)
    pool = ClassPool(rng.integers(0, 2, (50, 20, 28, 28, 1), dtype=np.uint8) * 255,
                     np.full(50, 20), [str(i) for i in range(50)])
    with strategy.scope():
        algorithm = Reptile(models.build_omniglot_model(5, seed=0),
                            optimizers.make_optimizer("adam", 1e-3))
    stepper = distribute.DistributedLearner(algorithm, strategy)
    tasks = iter(episodes.train_dataset(pool, episodes.TaskSpec(5, 10, 10, 5), 0, 5))
    stepper.meta_step(next(tasks), 1.0)  # compile
    times = []
    for _ in range(iters):
        batch = next(tasks)
        start = time.perf_counter()
        float(stepper.meta_step(batch, 1.0)["inner_loss"])
        times.append(time.perf_counter() - start)
    print(json.dumps({"median_ms": 1e3 * float(np.median(times)),
                      "min_ms": 1e3 * float(np.min(times))}))


def _run_variant(kind: str, cpu_devices: int, processes: int, iters: int) -> dict:
    argv = [sys.executable, __file__, "--child", kind, str(cpu_devices), "--iters", str(iters)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if kind != "multi-worker":
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    socks = [socket.socket() for _ in range(processes)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]}
    for s in socks:
        s.close()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=dict(
        env, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})))
             for i in range(processes)]
    outs = [p.communicate()[0] for p in procs]
    return json.loads(outs[0].strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _worker(args.child[0], int(args.child[1]), args.iters)
        return
    results = {}
    for name, (kind, cpus, procs) in VARIANTS.items():
        r = _run_variant(kind, cpus, procs, args.iters)
        r["iters_per_s"] = 1e3 / r["median_ms"]
        results[name] = r
        print(f"{name:24s} median {r['median_ms']:7.1f} ms  min {r['min_ms']:7.1f} ms  "
              f"{r['iters_per_s']:5.2f} meta-iterations/s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
