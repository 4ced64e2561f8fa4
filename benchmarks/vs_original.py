"""This project's run scripts against the original's, as whole processes, side by side.

  python benchmarks/vs_original.py --presets o55,m55 --rounds 3 --out /tmp/vs

Both sides run the paper command of each preset (its literal flags) on the
same data: the real Omniglot subset in `../shared/data/omniglot` (100 training
characters) and a Mini-ImageNet generated as JPEGs in the original's layout.
Each figure is the difference of two whole runs that differ in one thing,
each run timed from its first monitoring line (`batch 0: ...`, which both
sides print after the first meta-iteration) to its exit, so start-up, data
loading and the first traces, which vary by seconds between processes, stay
out of it:

  short      `--meta-iters S --eval-interval 100000 --eval-samples 1`
  long       the same with `--meta-iters L`
  monitored  `long` with the original's `--eval-interval 10`
  base       `short` with `--eval-samples B` (B: this project's default
             evaluation tasks at once for the dataset; no such run where B is 1)
  evaluated  `short` with `--eval-samples B + E` (E a multiple of B)

  train ms per meta-iteration    (long - short) / (L - S)
  monitored ms per meta-iteration (monitored - short) / (L - S)
  the same within one run        in `monitored`, seconds from the `batch 0`
                                 line to the last `batch N` line, over N:
                                 no start-up, tracing or exit in it at all
  evaluation ms per task         (evaluated - base) / (E * splits evaluated):
                                 both runs evaluate whole chunks of B tasks
                                 through the same compiled graph, as a paper
                                 run's 10,000 tasks do, so neither the graph's
                                 tracing nor a padded last chunk is charged to
                                 the tasks (against `short`, with one task per
                                 split, they were)
  start-up s                     seconds from the process's start to its first
                                 line `batch 0: ...` (in `short`: start-up,
                                 the first meta-iteration and its monitoring
                                 evaluation, as both sides print it)
  fixed cost s                   base - S * train - splits * B * evaluation
                                 (start-up, tracing, checkpoints and exit:
                                 what a run costs besides its iterations)
  peak RSS                       the largest `ru_maxrss` of the runs

Runs alternate between the sides (this, original; next round original, this)
so that the machine's drift falls on both alike; each figure is the median
over rounds, with the rounds listed. The projected wall time of a paper
command is fixed cost + meta_iters * monitored (the within-run figure) +
10000 * splits * evaluation (the paper commands monitor every 10 iterations
and evaluate 10,000 tasks per split).

Each dataset is decoded into this project's store (docs/datasets.md) before
the first round, untimed, as every run after a user's first finds it.
JSON and table are rewritten after every round, so a benchmark stopped early
keeps its whole rounds.

The original is `../shared/peer` (`--peer`); where it is absent only this
project's figures are measured, and the script says so. Writes
`<out>/vs_original.json` (every run's seconds and the summary) and
`<out>/vs_original.md` (the table).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from supervised_reptile.presets import PRESETS  # noqa: E402

SHARED = os.path.join(os.path.dirname(REPO), "shared")
OMNIGLOT_ZIP = os.path.join(SHARED, "data", "omniglot", "images_background_small1.zip")
OMNIGLOT_TRAIN_CHARACTERS = 100
MINI_CLASSES = {"train": 64, "val": 16, "test": 20}
SPLITS_EVALUATED = {"omniglot": 2, "miniimagenet": 3}  # train+test; train+val+test
PAPER_EVAL_SAMPLES = 10000
#: Evaluation tasks of the `base` run per split: this project's default tasks
#: at once (`supervised_reptile.build.TASKS_AT_ONCE`), so that it traces the
#: graph a paper run evaluates with.
EVAL_BASE = {"omniglot": 16, "miniimagenet": 1}
PAPER_EVAL_INTERVAL = 10
NO_MONITORING = 100000

#: Preset -> (S, L, E): short and long meta-iterations, extra evaluation tasks per split.
#: The within-run figure spans the monitored run's last L - 1 iterations, so a
#: slow spell of the VM weighs on 40 of them less than on 10 (m15 read 0.73x
#: over 10). Single rounds still swing: three over 40 measured m15 at 1.13x,
#: 1.47x and 0.77x of the original; read the median of several.
#: The evaluation figure spreads a process's noise (about a second) over
#: E * splits tasks: 16 ms per task over 64, 5 over 192.
COUNTS = {"o15": (10, 60, 96), "o15t": (10, 60, 96), "o55": (10, 60, 96),
          "o120": (5, 41, 16), "o520": (5, 41, 16),
          "m15": (3, 41, 10), "m15t": (3, 41, 10), "m55": (3, 41, 6)}
# Flat preset fields the original's parser knows, and how they are spelled there.
_FLAG = {"classes": "--classes", "shots": "--shots", "train_shots": "--train-shots",
         "inner_batch": "--inner-batch", "inner_iters": "--inner-iters",
         "learning_rate": "--learning-rate", "meta_step": "--meta-step",
         "meta_step_final": "--meta-step-final", "meta_batch": "--meta-batch",
         "eval_batch": "--eval-batch", "eval_iters": "--eval-iters"}


def paper_flags(preset: str) -> tuple[str, list[str]]:
    """The dataset and the paper command's flags (without meta-iters, checkpoint, data)."""
    dataset, fields = PRESETS[preset]
    flags = []
    for name, value in fields.items():
        if name == "transductive":
            flags += ["--transductive"] if value else []
        elif name in _FLAG:
            flags += [_FLAG[name], str(value)]
    return dataset, flags


def omniglot_data(cache: str) -> str:
    """The real Omniglot subset, unzipped once into `cache`."""
    target = os.path.join(cache, "omniglot")
    folder = os.path.join(target, "images_background_small1")
    if not os.path.isdir(folder):
        if not os.path.exists(OMNIGLOT_ZIP):
            raise SystemExit(f"no Omniglot data: {OMNIGLOT_ZIP} is absent; pass --omniglot-dir")
        with zipfile.ZipFile(OMNIGLOT_ZIP) as z:
            z.extractall(target + ".part")
        os.rename(target + ".part", target)
    return folder


def miniimagenet_data(cache: str, per_class: int, size: int) -> str:
    """Generated JPEGs in the original's layout: `{train,val,test}/n<8 digits>/*.JPEG`."""
    from PIL import Image
    folder = os.path.join(cache, f"miniimagenet_{per_class}x{size}")
    if os.path.isdir(folder):
        return folder
    part = folder + ".part"
    rng = np.random.default_rng(0)
    wnid = 0
    for split, count in MINI_CLASSES.items():
        for _ in range(count):
            wnid += 1
            cls_dir = os.path.join(part, split, f"n{wnid:08d}")
            os.makedirs(cls_dir, exist_ok=True)
            base = rng.integers(0, 256, (1, 1, 3))
            for i in range(per_class):
                # Smooth colour fields (upsampled noise): JPEG sizes like photos, not like noise.
                small = np.clip(base + rng.normal(0, 60, (6, 6, 3)), 0, 255).astype(np.uint8)
                img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
                img.save(os.path.join(cls_dir, f"n{wnid:08d}_{i}.JPEG"), quality=90)
    os.rename(part, folder)
    return folder


class Side:
    """How one implementation runs a command."""

    def __init__(self, name, argv, env):
        self.name, self.argv, self.env = name, argv, env

    def run(self, dataset, flags, scratch) -> dict:
        """Runs one whole process; returns its seconds, the seconds until its
        first monitoring line (`batch 0: ...`, printed after the first
        meta-iteration and its monitoring evaluation) and peak RSS (MiB)."""
        checkpoint = tempfile.mkdtemp(dir=scratch)
        cmd = self.argv(dataset) + flags + ["--checkpoint", checkpoint]
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, env=self.env(dataset), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=REPO)
        out, first_line, batches = [], None, []
        for line in proc.stdout:
            if line.startswith(b"batch "):
                now = time.perf_counter() - began
                first_line = now if first_line is None else first_line
                batches.append((int(line.split(b":")[0][6:]), now))
            out.append(line)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
        shutil.rmtree(checkpoint, ignore_errors=True)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise RuntimeError(f"{self.name} failed ({proc.returncode}): {' '.join(cmd)}\n"
                               + b"".join(out).decode(errors="replace")[-3000:])
        return {"seconds": seconds, "first_output_s": first_line, "batch_lines": batches,
                "rss_mib": usage.ru_maxrss / 1024}


def this_side(name, repo, data, extra):
    def argv(dataset):
        return [sys.executable, os.path.join(repo, f"run_{dataset}.py"),
                "--data-dir", data[dataset], "--progress", "off"] + (
            ["--train-characters", str(OMNIGLOT_TRAIN_CHARACTERS)] if dataset == "omniglot"
            else []) + extra

    def env(dataset):
        return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return Side(name, argv, env)


def original_side(peer, python, data):
    def argv(dataset):
        return [os.path.join(peer, "run.sh"), dataset]

    def env(dataset):
        return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", PEER_PY=python,
                    PEER_DATA_DIR=data[dataset],
                    OMNIGLOT_TRAIN_CHARS=str(OMNIGLOT_TRAIN_CHARACTERS))
    return Side("original", argv, env)


def run_kinds(s, l, e, base=1):
    """Run kind -> the flags that vary (`base`: `EVAL_BASE`; E must be a multiple of it)."""
    if e % base:
        raise ValueError(f"E={e} extra evaluation tasks is not a multiple of {base}, the tasks "
                         f"evaluated at once: its last chunk would be padded")

    def flags(iters, interval, samples):
        return ["--meta-iters", str(iters), "--eval-interval", str(interval),
                "--eval-samples", str(samples)]
    kinds = {"short": flags(s, NO_MONITORING, 1), "long": flags(l, NO_MONITORING, 1),
             "monitored": flags(l, PAPER_EVAL_INTERVAL, 1)}
    if base > 1:
        kinds["base"] = flags(s, NO_MONITORING, base)
    kinds["evaluated"] = flags(s, NO_MONITORING, base + e)
    return kinds


def figures(runs: dict, counts, splits, base_tasks=1) -> dict:
    """One round's figures from its runs (seconds); `base_tasks`: B. Without
    a `base` run (B = 1, or JSON written before there was one) `short`, with
    one task per split, is the base."""
    s, l, e = counts
    # Seconds after the first monitoring line: start-up, data loading and the
    # first traces vary by seconds from process to process on a busy 2-core
    # machine, and this leaves them out of every difference.
    sec = {k: v["seconds"] - v["first_output_s"] for k, v in runs.items()}
    train = (sec["long"] - sec["short"]) / (l - s)
    base = "base" if "base" in runs else "short"
    base_tasks = base_tasks if base == "base" else 1
    evaluation = (sec["evaluated"] - sec[base]) / (e * splits)
    lines = runs["monitored"].get("batch_lines") or []
    (i0, t0), (i1, t1) = (lines[0], lines[-1]) if len(lines) > 1 else ((0, 0), (0, 0))
    return {"train_ms": 1000 * train,
            "monitored_ms": 1000 * (sec["monitored"] - sec["short"]) / (l - s),
            "in_run_ms": 1000 * (t1 - t0) / (i1 - i0) if i1 > i0 else None,
            "eval_ms_per_task": 1000 * evaluation,
            "fixed_s": runs[base]["seconds"] - s * train - splits * base_tasks * evaluation,
            "first_output_s": runs["short"]["first_output_s"],
            "peak_rss_mib": max(v["rss_mib"] for v in runs.values())}


def summarise(rounds: list[dict], dataset: str, meta_iters: int) -> dict:
    out = {}
    for name in rounds[0]:
        values = [r[name] for r in rounds if r[name] is not None]
        out[name] = {"median": statistics.median(values) if values else None, "rounds": values}
    splits = SPLITS_EVALUATED[dataset]
    # The within-run figure where there is one: it holds only the iterations.
    monitored = out.get("in_run_ms", {}).get("median") or out["monitored_ms"]["median"]
    out["paper_hours"] = (out["fixed_s"]["median"]
                          + meta_iters * monitored / 1000
                          + PAPER_EVAL_SAMPLES * splits * out["eval_ms_per_task"]["median"] / 1000
                          ) / 3600
    return out


#: The within-run figure leads: it holds only iterations, while the two run
#: differences after it carry whole processes' exits (a second either way).
MEASURES = [("in_run_ms", "training, monitoring every 10, ms per meta-iteration within one run: "
                          "`batch 0` to the last `batch` line"),
            ("train_ms", "training, ms per meta-iteration: long - short runs"),
            ("monitored_ms", "the same, monitoring every 10: monitored - short runs"),
            ("eval_ms_per_task", "final evaluation, ms per task"),
            ("first_output_s", "start-up: seconds to the first `batch 0` line"),
            ("fixed_s", "fixed cost of a run (start-up, tracing, exit), s"),
            ("peak_rss_mib", "peak RSS, MiB")]


def markdown(summary: dict, label: str, ours: list[str]) -> str:
    """The table: a column per checkout of this project (`ours`), the
    original's, and the original / checkout ratio of each (a difference in
    seconds for the start-up measures)."""
    both = any("original" in v for v in summary.values())
    heads = [("this project" if n == "this" else n) for n in ours]
    lines = [f"### {label}", "",
             "| preset | measure | " + " | ".join(heads) + " | original | "
             + " | ".join(f"original / {h}" for h in heads) + " |",
             "|---|---|" + "---|" * (2 * len(ours) + 1)]

    def cell(fig):
        if fig["median"] is None:
            return "-"
        rounds = ", ".join(f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}" for v in fig["rounds"])
        m = fig["median"]
        return f"{m:.0f} ({rounds})" if abs(m) >= 10 else f"{m:.1f} ({rounds})"

    def ratio(key, this, orig):
        if orig is None or this[key]["median"] is None or orig[key]["median"] is None:
            return "-"
        if key in ("fixed_s", "first_output_s"):
            return f"{this[key]['median'] - orig[key]['median']:+.1f} s"
        return f"{orig[key]['median'] / this[key]['median']:.2f}x" if this[key]["median"] > 0 \
            else "-"

    for preset, sides in summary.items():
        orig = sides.get("original")
        for key, name in MEASURES:
            lines.append(f"| {preset} | {name} | "
                         + " | ".join(cell(sides[n][key]) for n in ours)
                         + f" | {cell(orig[key]) if orig else 'not run'} | "
                         + " | ".join(ratio(key, sides[n], orig) for n in ours) + " |")
        hours = [sides[n]["paper_hours"] for n in ours]
        lines.append(f"| {preset} | paper command end to end, projected hours | "
                     + " | ".join(f"{h:.1f}" for h in hours)
                     + f" | {'%.1f' % orig['paper_hours'] if orig else 'not run'} | "
                     + " | ".join(f"{orig['paper_hours'] / h:.2f}x" if orig else "-"
                                  for h in hours) + " |")
    if not both:
        lines += ["", "The original was not run (no ../shared/peer)."]
    return "\n".join(lines) + "\n"


def write_results(args, presets, counts, data, raw, ours, rounds: int) -> str:
    """Summarises the first `rounds` rounds into `<out>/vs_original.{json,md}`;
    returns the table."""
    summary = {}
    for preset in presets:
        dataset, _ = paper_flags(preset)
        summary[preset] = {}
        for side, runs in raw[preset].items():
            per_round = [figures({x["kind"]: x for x in runs if x["round"] == r},
                                 counts[preset], SPLITS_EVALUATED[dataset], EVAL_BASE[dataset])
                         for r in range(rounds)]
            summary[preset][side] = summarise(per_round, dataset,
                                              PRESETS[preset][1]["meta_iters"])
    table = markdown(summary, args.label, ours)
    with open(os.path.join(args.out, "vs_original.json"), "w") as f:
        json.dump({"label": args.label, "counts": {x: counts[x] for x in presets},
                   "this_flags": args.this_flags, "data": data, "runs": raw,
                   "summary": summary}, f, indent=1)
    with open(os.path.join(args.out, "vs_original.md"), "w") as f:
        f.write(table)
    return table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default=",".join(PRESETS),
                   help=f"comma-separated, from {', '.join(PRESETS)}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--add", action="append", default=[], metavar="JSON",
                   help="an earlier vs_original.json whose runs count as further rounds "
                   "(same presets, sides and counts; --rounds 0 only summarises)")
    p.add_argument("--out", required=True, help="folder for vs_original.json and .md")
    p.add_argument("--label", default="vs_original", help="the table's title")
    p.add_argument("--repo", default=REPO, help="this project's checkout to time")
    p.add_argument("--also", action="append", default=[], metavar="NAME=REPO",
                   help="another checkout of this project timed in the same rounds, e.g. "
                   "before=/tmp/before (a `git worktree` of an older commit)")
    p.add_argument("--this-flags", default="",
                   help="extra flags for this project's side, e.g. '--parallel-tasks'")
    p.add_argument("--peer", default=os.path.join(SHARED, "peer"))
    p.add_argument("--peer-python", default=os.environ.get("PEER_PY"),
                   help="the python of the peer's venv (default: $PEER_PY, else setup.sh)")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "vs_original_data"),
                   help="where the unzipped and generated data are kept between runs")
    p.add_argument("--omniglot-dir", help="default: the subset in ../shared, unzipped")
    p.add_argument("--miniimagenet-dir", help="default: generated into --cache")
    p.add_argument("--mini-per-class", type=int, default=600)
    p.add_argument("--mini-size", type=int, default=84, help="generated JPEGs' side in pixels")
    p.add_argument("--counts", default="", help="override S:L:E, e.g. 'o55=10:60:40,m55=4:16:6'")
    args = p.parse_args(argv)

    presets = args.presets.split(",")
    unknown = [x for x in presets if x not in PRESETS]
    if unknown:
        p.error(f"unknown presets {unknown}; valid: {', '.join(PRESETS)}")
    counts = dict(COUNTS)
    for item in filter(None, args.counts.split(",")):
        name, value = item.split("=")
        counts[name] = tuple(int(v) for v in value.split(":"))
    for preset in presets:
        try:
            run_kinds(*counts[preset], EVAL_BASE[PRESETS[preset][0]])
        except ValueError as e:
            p.error(f"--counts {preset}: {e}")
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.cache, exist_ok=True)
    datasets = {PRESETS[x][0] for x in presets}
    data = {}
    if "omniglot" in datasets:
        data["omniglot"] = args.omniglot_dir or omniglot_data(args.cache)
    if "miniimagenet" in datasets:
        data["miniimagenet"] = args.miniimagenet_dir or miniimagenet_data(
            args.cache, args.mini_per_class, args.mini_size)

    sides = [this_side("this", os.path.abspath(args.repo), data, args.this_flags.split())]
    for item in args.also:
        name, _, repo = item.partition("=")
        sides.append(this_side(name, os.path.abspath(repo), data, args.this_flags.split()))
    ours = [s.name for s in sides]
    if os.path.exists(os.path.join(args.peer, "run.sh")):
        python = args.peer_python or subprocess.run(
            [os.path.join(args.peer, "setup.sh")], capture_output=True, text=True,
            check=True).stdout.strip().splitlines()[-1]
        sides.append(original_side(args.peer, python, data))
    else:
        print(f"the original is not timed: {args.peer} has no run.sh (pass --peer)", flush=True)

    for dataset in data if args.rounds else ():
        # This project decodes a dataset once into a store beside it (docs/datasets.md); every
        # run after a user's first opens it. Written here, untimed, so that no round pays it.
        # (A checkout from before Omniglot's store decodes it at every start.)
        converted = subprocess.run([sys.executable, "-m", "supervised_reptile.convert",
                                    data[dataset], "--dataset", dataset],
                                   cwd=os.path.abspath(args.repo))
        if converted.returncode and dataset == "miniimagenet":
            raise SystemExit(f"converting {data[dataset]} failed")
    scratch = tempfile.mkdtemp(prefix="vs_original_")
    raw = {x: {s.name: [] for s in sides} for x in presets}
    done = 0  # rounds read from earlier runs' JSON (`--add`)
    for path in args.add:
        with open(path) as f:
            earlier = json.load(f)
        rounds = 1 + max(x["round"] for p_ in earlier["runs"].values() for r_ in p_.values()
                         for x in r_)
        for preset in presets:
            if tuple(earlier["counts"][preset]) != tuple(counts[preset]):
                raise SystemExit(f"{path}: {preset} was run with counts "
                                 f"{earlier['counts'][preset]}, not {counts[preset]}")
            for side in raw[preset]:
                raw[preset][side] += [dict(x, round=x["round"] + done)
                                      for x in earlier["runs"][preset][side]]
        done += rounds
    for r in range(done, done + args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for preset in presets:
            dataset, flags = paper_flags(preset)
            for kind, varying in run_kinds(*counts[preset], EVAL_BASE[dataset]).items():
                for side in order:
                    result = side.run(dataset, flags + varying, scratch)
                    raw[preset][side.name].append(dict(result, round=r, kind=kind))
                    print(f"round {r} {preset} {kind} {side.name}: {result['seconds']:.1f} s "
                          f"{result['rss_mib']:.0f} MiB", flush=True)
        # Written after every round: a long benchmark stopped early keeps its whole rounds.
        table = write_results(args, presets, counts, data, raw, ours, r + 1)
    if args.rounds == 0:
        table = write_results(args, presets, counts, data, raw, ours, done)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
