import csv
import json

import numpy as np
import pytest

from supervised_reptile import eval_results


def test_ci_line_and_both_file_formats(tmp_path):
    counts = {"train": np.array([5, 4, 5, 3]), "test": np.array([2])}
    assert eval_results.ci_line("Train", counts["train"], 5) == \
        "Train accuracy 95% CI: 0.850000 +- 0.187656 (4 tasks)"  # sd 0.19149, 1.96 * sd / 2
    eval_results.write(str(tmp_path / "r.json"), counts, 5)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["splits"]["train"]["correct"] == [5, 4, 5, 3]
    assert data["splits"]["train"]["accuracy"] == pytest.approx(0.85)
    assert data["splits"]["test"]["ci95"] == 0.0
    eval_results.write(str(tmp_path / "sub" / "r.csv"), counts, 5)
    rows = list(csv.DictReader(open(tmp_path / "sub" / "r.csv")))
    assert len(rows) == 5 and rows[1] == {"split": "train", "task": "1", "correct": "4",
                                          "queries": "5", "accuracy": "0.8"}


def test_unknown_format_is_refused_before_any_work():
    eval_results.check_path("")
    with pytest.raises(ValueError, match=r"--eval-results 'out.txt'.*\.json"):
        eval_results.check_path("out.txt")


def test_the_run_wrote_its_results(tiny_run):
    data = json.loads(open(tiny_run["results"]).read())
    assert set(data["splits"]) == {"train", "test"}
    assert all(s["num_tasks"] == 4 for s in data["splits"].values())
    lines = tiny_run["result"].stdout.splitlines()
    acc = float(next(l for l in lines if l.startswith("Test accuracy: ")).split(": ")[1])
    assert data["splits"]["test"]["accuracy"] == pytest.approx(acc)
    assert any(l.startswith("Test accuracy 95% CI: ") for l in lines)
