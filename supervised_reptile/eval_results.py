"""The final evaluation's report: 95% confidence intervals and per-task result files.

`--eval-results FILE` writes one record per evaluation task: `.json` gives
`{"num_classes": N, "splits": {split: {"accuracy", "ci95", "num_tasks",
"correct": [...]}}}`, `.csv` gives rows `split,task,correct,queries,accuracy`.
Task `t` of a split is the `t`-th task of that split's final-evaluation
stream (`episodes.FINAL_EVAL_STREAM + split index`), so it can be drawn
again with `episodes.eval_dataset`.
"""

import csv
import json
import os

import numpy as np

from supervised_reptile.evaluate import confidence_interval

FORMATS = (".json", ".csv")


def check_path(path: str) -> None:
    """Raises ValueError unless `path` is "" or ends in a known format (before any work)."""
    if path and os.path.splitext(path)[1].lower() not in FORMATS:
        raise ValueError(f"--eval-results {path!r}: the file name must end in one of {FORMATS}")


def task_accuracies(counts: np.ndarray, num_classes: int) -> np.ndarray:
    """float64 `[num_tasks]`: correct queries / N per task."""
    return np.asarray(counts, np.float64) / num_classes


def ci_line(title: str, counts: np.ndarray, num_classes: int) -> str:
    """`"<title> accuracy 95% CI: <mean> +- <half-width> (<n> tasks)"`."""
    mean, half = confidence_interval(task_accuracies(counts, num_classes))
    return f"{title} accuracy 95% CI: {mean:.6f} +- {half:.6f} ({len(counts)} tasks)"


def write(path: str, counts: dict[str, np.ndarray], num_classes: int) -> None:
    """Writes per-task results (format from the extension; see module docstring).

    Args:
      path: the output file (its folder is created).
      counts: split name -> int `[num_tasks]` correct queries per task.
      num_classes: N (queries per task).
    """
    check_path(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.lower().endswith(".json"):
        splits = {}
        for split, c in counts.items():
            mean, half = confidence_interval(task_accuracies(c, num_classes))
            splits[split] = {"accuracy": mean, "ci95": half, "num_tasks": len(c),
                             "correct": [int(x) for x in c]}
        with open(path, "w") as f:
            json.dump({"num_classes": num_classes, "splits": splits}, f, indent=1)
        return
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["split", "task", "correct", "queries", "accuracy"])
        for split, c in counts.items():
            for t, x in enumerate(c):
                out.writerow([split, t, int(x), num_classes, int(x) / num_classes])
