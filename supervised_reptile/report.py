"""What a finished evaluation prints and writes.

Printed, for classification, in this order: the original's
`<Split> accuracy: <float>` lines, then `<Split> accuracy 95% CI: ...`, then
(when every inner step was scored, as MAML's protocol does)
`<Split> accuracy after each inner step (95% CI over T tasks): 0: ..., 1: ...`.

A results file (`.json` or `.csv`) has one record per task: `.json` gives
`{"num_classes": N, "splits": {split: {"accuracy", "ci95", "num_tasks",
"correct": [...], and with every step "accuracy_per_step", "ci95_per_step",
"correct_per_step": [[...]]}}}`, `.csv` gives rows
`split,task,correct,queries,accuracy` (plus `correct_after_step_<s>` columns
with every step). Task `t` of a split is the `t`-th task of that split's
final-evaluation stream, so it can be drawn again with `episodes.eval_dataset`.
"""

import csv
import json
import os
from typing import Callable

import numpy as np

from supervised_reptile.config import RESULT_FORMATS as FORMATS
from supervised_reptile.evaluate import accuracy, confidence_interval

#: Printed split names, in the original's order.
SPLIT_TITLES = {"train": "Train", "val": "Validation", "test": "Test"}


def check_path(path: str) -> None:
    """Raises ValueError unless `path` is "" or ends in a known format (before any work)."""
    if path and os.path.splitext(path)[1].lower() not in FORMATS:
        raise ValueError(f"results file {path!r}: the name must end in one of {FORMATS}")


def _columns(counts: np.ndarray) -> np.ndarray:
    """`[tasks, R]` from `[tasks]` or `[tasks, R]`."""
    counts = np.asarray(counts)
    return counts.reshape(len(counts), -1)


def ci_line(title: str, counts: np.ndarray, num_classes: int) -> str:
    """`"<title> accuracy 95% CI: <mean> +- <half-width> (<n> tasks)"` after the last step."""
    mean, half = confidence_interval(_columns(counts)[:, -1] / num_classes)
    return f"{title} accuracy 95% CI: {mean:.6f} +- {half:.6f} ({len(counts)} tasks)"


def per_step_line(title: str, counts: np.ndarray, num_classes: int) -> str:
    """Accuracy and 95% CI after each inner step (column 0: before adaptation)."""
    columns = _columns(counts) / num_classes
    cells = ["%d: %.4f +- %.4f" % (s, *confidence_interval(columns[:, s]))
             for s in range(columns.shape[1])]
    return (f"{title} accuracy after each inner step (95% CI over {len(columns)} tasks): "
            + ", ".join(cells))


def print_accuracies(counts: dict[str, np.ndarray], num_classes: int,
                     log_fn: Callable[[str], None]) -> dict[str, float]:
    """Prints the lines of the module docstring; returns split -> accuracy."""
    results = {split: accuracy(c, num_classes) for split, c in counts.items()}
    for split, acc in results.items():
        log_fn(f"{SPLIT_TITLES[split]} accuracy: {np.float64(acc)}")
    for split, c in counts.items():
        log_fn(ci_line(SPLIT_TITLES[split], c, num_classes))
    for split, c in counts.items():
        if _columns(c).shape[1] > 1:
            log_fn(per_step_line(SPLIT_TITLES[split], c, num_classes))
    return results


def mse_line(when: str, errors: np.ndarray) -> str:
    """Sinusoid: held-out MSE before adaptation and after the last step, with CIs.

    Args:
      errors: float `[tasks, steps + 1]` per-task query MSE after each step.
    """
    steps = errors.shape[1] - 1
    before, after = confidence_interval(errors[:, 0]), confidence_interval(errors[:, -1])
    return (f"Held-out MSE {when} meta-training (95% CI over {len(errors)} tasks): "
            f"before adaptation {before[0]:.4f} +- {before[1]:.4f}, "
            f"after {steps} steps {after[0]:.4f} +- {after[1]:.4f}")


def _json_record(counts: np.ndarray, num_classes: int) -> dict:
    columns = _columns(counts)
    mean, half = confidence_interval(columns[:, -1] / num_classes)
    record = {"accuracy": mean, "ci95": half, "num_tasks": len(columns),
              "correct": [int(x) for x in columns[:, -1]]}
    if columns.shape[1] > 1:
        cis = [confidence_interval(columns[:, s] / num_classes) for s in range(columns.shape[1])]
        record.update(accuracy_per_step=[m for m, _ in cis], ci95_per_step=[h for _, h in cis],
                      correct_per_step=[[int(x) for x in row] for row in columns])
    return record


def write(path: str, counts: dict[str, np.ndarray], num_classes: int) -> None:
    """Writes per-task results (the format from the extension; see the module docstring).

    The file is written next to its final name and renamed into place, so an
    interrupted run leaves no half-written results.

    Args:
      path: the output file (its folder is created).
      counts: split name -> `[num_tasks]` or `[num_tasks, R]` correct queries.
      num_classes: N (queries per task).
    """
    check_path(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w", newline="") as f:
        if path.lower().endswith(".json"):
            json.dump({"num_classes": num_classes,
                       "splits": {s: _json_record(c, num_classes) for s, c in counts.items()}},
                      f, indent=1)
        else:
            _write_csv(f, counts, num_classes)
    os.replace(partial, path)


def _write_csv(f, counts: dict[str, np.ndarray], num_classes: int) -> None:
    steps = max(_columns(c).shape[1] for c in counts.values())
    extra = [f"correct_after_step_{s}" for s in range(steps)] if steps > 1 else []
    out = csv.writer(f)
    out.writerow(["split", "task", "correct", "queries", "accuracy"] + extra)
    for split, c in counts.items():
        for t, row in enumerate(_columns(c)):
            final = int(row[-1])
            out.writerow([split, t, final, num_classes, final / num_classes]
                         + ([int(x) for x in row] if extra else []))
