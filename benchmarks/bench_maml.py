"""Second- vs first-order MAML: ms per meta-iteration on the MAML paper's settings.

Run by hand (not part of the test suite):
  python benchmarks/bench_maml.py                          # maml-o15, both orders
  python benchmarks/bench_maml.py --presets maml-o15 maml-o120 --iters 20 --json out.json

Data are random binary pixels in Omniglot's shape (or random Mini-ImageNet
pixels), so no dataset is needed. Each figure is the median (and the minimum,
steadier on a shared machine) over `--iters` meta-iterations after `--warmup`;
"compile_s" is the first call (tracing included). The MAML paper reports
first order as roughly 33% faster (section 5.2).
"""

import argparse
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
from supervised_reptile.config import Config  # noqa: E402
from supervised_reptile.presets import MAML_PRESETS  # noqa: E402
from supervised_reptile.build import build_algorithm, task_specs  # noqa: E402

from bench import synthetic_pool  # noqa: E402  (benchmarks/, this script's folder)


def bench(name: str, first_order: bool, warmup: int, iters: int) -> dict:
    dataset, overrides = MAML_PRESETS[name]
    config = Config.from_flat(dataset=dataset, **overrides, maml_first_order=first_order)
    train_spec, _ = task_specs(config)
    algorithm = build_algorithm(config)
    pool = synthetic_pool(dataset, np.random.default_rng(0))
    tasks = iter(episodes.train_dataset(pool, train_spec, 0, config.meta.meta_batch))

    def step():
        algorithm.meta_step(next(tasks), 1.0)["query_loss"].numpy()

    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return {"preset": name, "order": "first" if first_order else "second",
            "meta_batch": config.meta.meta_batch, "inner_iters": config.inner.inner_iters,
            "compile_s": round(compile_s, 2), "median_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["maml-o15"], choices=sorted(MAML_PRESETS))
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    rows = []
    for name in args.presets:
        for first_order in (False, True):
            rows.append(bench(name, first_order, args.warmup, args.iters))
            print(json.dumps(rows[-1]), flush=True)
        second, first = rows[-2], rows[-1]
        print(f"{name}: first order takes {first['median_ms'] / second['median_ms']:.0%} of "
              f"second order's time (median), {first['min_ms'] / second['min_ms']:.0%} (min)")
    if args.json:
        meta = {"tensorflow": tf.__version__, "machine": platform.machine(),
                "cpus": os.cpu_count()}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
