"""Steady-state speed of the paper commands: ms per meta-iteration and per evaluation task.

Run by hand (not part of the test suite):
  python benchmarks/bench.py                       # all presets, table on stdout
  python benchmarks/bench.py --presets o55 --json out.json

Data are random pixels in the real shapes (the speed does not depend on their
values), so no dataset is needed. Each figure is the median over `--iters`
calls after `--warmup` calls (and the minimum, steadier on a shared machine);
"compile" is the first call's time (tracing and
graph optimisation included).
"""

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from supervised_reptile import episodes  # noqa: E402
from supervised_reptile.class_pool import ClassPool  # noqa: E402
from supervised_reptile.config import PRESETS, Config  # noqa: E402
from supervised_reptile.experiment import build_algorithm, task_specs  # noqa: E402


def _pool(dataset: str, rng) -> ClassPool:
    if dataset == "omniglot":
        images = (rng.random((100, 20, 28, 28)) < 0.9).astype(np.uint8) * 255
    else:
        images = rng.integers(0, 256, (20, 30, 84, 84, 3), dtype=np.uint8)
    return ClassPool(images, np.full(len(images), images.shape[1], np.int32),
                     tuple(map(str, range(len(images)))))


def _time(fn, warmup: int, iters: int) -> tuple[float, float, float]:
    """(first call seconds, median ms and minimum ms of the steady state).

    The minimum is the steadier figure on a shared machine: interference only
    ever adds time."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return first, statistics.median(times), min(times)


def bench_preset(name: str, warmup: int, iters: int) -> dict:
    dataset, overrides = PRESETS[name]
    config = Config(dataset=dataset, **overrides)
    pool = _pool(dataset, np.random.default_rng(0))
    train_spec, eval_spec = task_specs(config)
    algorithm = build_algorithm(config)
    tasks = iter(episodes.train_dataset(pool, train_spec, 0, config.meta_batch))
    compile_s, meta_ms, meta_min = _time(lambda: algorithm.meta_step(next(tasks), 0.5)["inner_loss"].numpy(),
                               warmup, iters)
    row = {"preset": name, "dataset": dataset, "classes": config.classes,
           "meta_batch": config.meta_batch, "inner_iters": config.inner_iters,
           "inner_batch": config.inner_batch, "compile_s": round(compile_s, 2),
           "meta_iteration_ms": round(meta_ms, 1), "meta_iteration_min_ms": round(meta_min, 1)}
    evals = iter(episodes.eval_dataset(pool, eval_spec, 0, episodes.FINAL_EVAL_STREAM))
    for transductive in (True, False):
        evaluator = type(algorithm)(algorithm.model, algorithm.optimizer,
                                    weight_decay=config.weight_decay, transductive=transductive)
        _, ms, ms_min = _time(lambda: evaluator.adapt_and_predict(next(evals)).numpy(),
                              warmup, iters)
        kind = "transductive" if transductive else "non_transductive"
        row["eval_task_ms_" + kind] = round(ms, 1)
        row["eval_task_min_ms_" + kind] = round(ms_min, 1)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="o55,o520,m55", help="comma-separated preset names")
    p.add_argument("--iters", type=int, default=20, help="timed calls per figure")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls after the first")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    rows = [bench_preset(n, args.warmup, args.iters) for n in args.presets.split(",")]
    meta = {"tensorflow": tf.__version__, "machine": platform.machine(), "cpus": os.cpu_count(),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]}
    cols = ["preset", "meta_iteration_ms", "meta_iteration_min_ms", "eval_task_ms_transductive",
            "eval_task_min_ms_transductive", "eval_task_ms_non_transductive",
            "eval_task_min_ms_non_transductive", "compile_s"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
