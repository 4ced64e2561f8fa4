"""Start-up and memory of image runs: decoding JPEGs every run against the decoded store.

  python benchmarks/data_startup.py --out /tmp/data_startup            # full size
  python benchmarks/data_startup.py --per-class 60 --out /tmp/ds       # a quick look
  python benchmarks/data_startup.py --tiered --out /tmp/ds             # + tieredImageNet size

Mini-ImageNet is generated at full size in the original's layout (100 classes
x `--per-class` JPEGs of `--size` pixels, smooth colour fields so the files
have photo-like sizes; cached in `--cache`). Each measured run is a whole
`run_miniimagenet.py` process of the m55 preset stopped after one
meta-iteration, in three settings:

  decode     `--store off`: every run decodes all JPEGs into memory
  convert    the first run with a store: decodes into the store, then opens it
  store      a later run: opens the store

and reports, per setting: the run's own line `Loaded ... in X s` (the data
step alone), seconds from the process's start to its first `batch 0:` line
(start-up as a user waits for it: imports, data, model, first traces), peak
RSS (`ru_maxrss`) and peak private memory (the largest `RssAnon` of
/proc/<pid>/status sampled every 0.1 s: everything but file-backed pages,
which for a store are the page cache's, shared and reclaimable).

`--tiered` also writes a generated store of tieredImageNet's size (608 classes
split 351/97/160, 779,165 84x84x3 images, about 16.5 GB on disk) and runs the
t55 preset from it for `--tiered-iters` meta-iterations with monitoring,
reporting the same figures: the memory a tieredImageNet run needs.

Writes `<out>/data_startup.json` and `<out>/data_startup.md`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

MINI_CLASSES = {"train": 64, "val": 16, "test": 20}
TIERED_CLASSES = {"train": 351, "val": 97, "test": 160}
TIERED_IMAGES = 779165
RUN = ["--preset", "m55", "--meta-iters", "1", "--eval-interval", "1", "--eval-samples", "1",
       "--progress", "off"]


def _write_class(job):
    """One class's JPEGs (a worker process)."""
    from PIL import Image
    cls_dir, wnid, per_class, size, seed = job
    rng = np.random.default_rng(seed)
    os.makedirs(cls_dir, exist_ok=True)
    base = rng.integers(0, 256, (1, 1, 3))
    for i in range(per_class):
        small = np.clip(base + rng.normal(0, 60, (8, 8, 3)), 0, 255).astype(np.uint8)
        noise = rng.normal(0, 6, (size[1], size[0], 3))
        big = np.asarray(Image.fromarray(small).resize(size, Image.BILINEAR), np.float64)
        img = Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8))
        img.save(os.path.join(cls_dir, f"{wnid}_{i}.JPEG"), quality=90)


def miniimagenet_jpegs(cache: str, per_class: int, size: tuple[int, int]) -> str:
    """Full-size generated Mini-ImageNet (cached)."""
    folder = os.path.join(cache, f"miniimagenet_{per_class}_{size[0]}x{size[1]}")
    if os.path.isdir(folder):
        return folder
    part = folder + ".part"
    shutil.rmtree(part, ignore_errors=True)
    jobs, n = [], 0
    for split, count in MINI_CLASSES.items():
        for _ in range(count):
            n += 1
            wnid = f"n{n:08d}"
            jobs.append((os.path.join(part, split, wnid), wnid, per_class, size, n))
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_class, jobs))
    os.rename(part, folder)
    return folder


def tiered_store(cache: str) -> str:
    """A generated store of tieredImageNet's size (written directly, no JPEGs)."""
    from supervised_reptile.data import store
    folder = os.path.join(cache, "tieredimagenet_store")
    if store.Store.detect(folder):
        return folder
    part = folder + ".part"
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    rng = np.random.default_rng(0)
    classes = sum(TIERED_CLASSES.values())
    # Class sizes around tieredImageNet's mean (1,281), summing to its total.
    counts = rng.integers(732, 1301, classes)
    counts[:] = np.round(counts * TIERED_IMAGES / counts.sum())
    counts[0] += TIERED_IMAGES - counts.sum()
    splits, start = {}, 0
    for split, n in TIERED_CLASSES.items():
        c = counts[start:start + n]
        images = np.lib.format.open_memmap(os.path.join(part, f"{split}.npy"), "w+", np.uint8,
                                           (n, int(c.max()), 84, 84, 3))
        pattern = rng.integers(0, 256, (84, 84, 3), dtype=np.uint8)
        for k in range(n):
            images[k, :c[k]] = pattern ^ np.uint8(k % 256)
        images.flush()
        del images
        splits[split] = {"names": [f"n{9 * 10**7 + start + k:08d}" for k in range(n)],
                         "counts": [int(x) for x in c]}
        start += n
    with open(os.path.join(part, store.INDEX), "w") as f:
        json.dump({"format": store.FORMAT, "dataset": "tieredimagenet", "form": "generated",
                   "source": "benchmarks/data_startup.py", "fingerprint": "generated",
                   "image_shape": [84, 84, 3], "splits": splits, "skipped": []}, f)
    os.rename(part, folder)
    return folder


def _resident_kib(pid: int) -> tuple[int, int]:
    """`(RssAnon, RssFile)` of a process in KiB (0 once it is gone)."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("RssAnon:", "RssFile:")):
                    found[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return found.get("RssAnon", 0), found.get("RssFile", 0)


def run(argv: list[str]) -> dict:
    """One whole run: seconds to `Loaded ...`'s figure, to `batch 0:`, to exit; memory."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "run_miniimagenet.py")] + argv,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    peak = [0, 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            anon, mapped = _resident_kib(proc.pid)
            peak[0], peak[1] = max(peak[0], anon), max(peak[1], mapped)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, loaded, first = [], None, None
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        out.append(line)
        if line.startswith("Loaded ") and " in " in line:
            loaded = float(line.rsplit(" in ", 1)[1].split()[0])
        if first is None and line.startswith("batch 0:"):
            first = time.perf_counter() - began
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    seconds = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"run failed: {' '.join(argv)}\n{''.join(out)[-3000:]}")
    return {"loaded_s": loaded, "first_batch_s": first, "seconds": seconds,
            "rss_mib": usage.ru_maxrss / 1024, "private_mib": peak[0] / 1024,
            "file_mib": peak[1] / 1024}


def markdown(results: dict, label: str) -> str:
    rows = ["| run | data step (s) | to first meta-iteration (s) | peak RSS (MiB) | peak private "
            "(MiB) | peak file-backed (MiB) |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['loaded_s']:.1f} | {r['first_batch_s']:.1f} | "
                    f"{r['rss_mib']:.0f} | {r['private_mib']:.0f} | {r['file_mib']:.0f} |")
    return f"{label}\n\n" + "\n".join(rows) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--out", required=True, help="folder for the JSON and Markdown")
    p.add_argument("--cache", default="/tmp/data_startup", help="generated data (kept)")
    p.add_argument("--per-class", type=int, default=600)
    p.add_argument("--size", default="500x375", help="JPEG size WIDTHxHEIGHT")
    p.add_argument("--tiered", action="store_true", help="also the tieredImageNet-size run")
    p.add_argument("--tiered-iters", type=int, default=50)
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    os.makedirs(args.out, exist_ok=True)
    began = time.perf_counter()
    data = miniimagenet_jpegs(args.cache, args.per_class, size)
    print(f"data: {data} ({time.perf_counter() - began:.0f} s)", flush=True)
    scratch = os.path.join(args.cache, "scratch")
    shutil.rmtree(scratch, ignore_errors=True)
    store_dir = os.path.join(scratch, "store")
    common = RUN + ["--data-dir", data]
    results = {}
    for name, extra in (("decode (--store off)", ["--store", "off"]),
                        ("convert (first run with a store)", ["--store", store_dir]),
                        ("store (a later run)", ["--store", store_dir])):
        results[name] = run(common + extra + ["--checkpoint", os.path.join(scratch, name[:5])])
        print(name, results[name], flush=True)
    decode, opened = results["decode (--store off)"], results["store (a later run)"]
    summary = {"miniimagenet": results, "jpegs": data,
               "data_step_speedup": decode["loaded_s"] / max(opened["loaded_s"], 0.05)}
    md = markdown(results, f"Mini-ImageNet, {args.per_class} JPEGs of {args.size} per class "
                  f"(100 classes), m55 stopped after one meta-iteration")
    md += (f"\nThe data step from the store is {summary['data_step_speedup']:.0f}x faster "
           "than decoding (the run's `Loaded ... in` line, rounded to 0.1 s).\n")
    if args.tiered:
        tiered = tiered_store(args.cache)
        iters = str(args.tiered_iters)
        results_t = run(["--dataset", "tieredimagenet", "--data-dir", tiered, "--preset", "t55",
                         "--meta-iters", iters, "--eval-interval", "10", "--eval-samples", "10",
                         "--progress", "off", "--checkpoint", os.path.join(scratch, "tiered")])
        print("tiered", results_t, flush=True)
        summary["tieredimagenet"] = results_t
        md += "\n" + markdown({f"t55, {iters} meta-iterations, monitoring every 10": results_t},
                              "tieredImageNet-size generated store (608 classes, 779,165 "
                              "images, 16.5 GB)")
    shutil.rmtree(scratch, ignore_errors=True)
    with open(os.path.join(args.out, "data_startup.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(args.out, "data_startup.md"), "w") as f:
        f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
