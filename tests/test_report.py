"""Tests of report.py: the printed accuracy lines and the results files."""

import csv
import json
import os

import numpy as np
import pytest

from supervised_reptile import report


def test_ci_line_and_both_file_formats(tmp_path):
    counts = {"train": np.array([5, 4, 5, 3]), "test": np.array([2])}
    assert report.ci_line("Train", counts["train"], 5) == \
        "Train accuracy 95% CI: 0.850000 +- 0.187656 (4 tasks)"  # sd 0.19149, 1.96 * sd / 2
    report.write(str(tmp_path / "r.json"), counts, 5)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["num_classes"] == 5
    assert data["splits"]["train"]["correct"] == [5, 4, 5, 3]
    assert data["splits"]["train"]["accuracy"] == pytest.approx(0.85)
    assert data["splits"]["test"]["ci95"] == 0.0
    assert "accuracy_per_step" not in data["splits"]["train"]
    report.write(str(tmp_path / "sub" / "r.csv"), counts, 5)
    rows = list(csv.DictReader(open(tmp_path / "sub" / "r.csv")))
    assert len(rows) == 5 and rows[1] == {"split": "train", "task": "1", "correct": "4",
                                          "queries": "5", "accuracy": "0.8"}
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".partial")]


def test_a_single_column_reads_as_a_flat_count():
    flat = np.array([5, 4, 5, 3])
    assert report.ci_line("Test", flat[:, None], 5) == report.ci_line("Test", flat, 5)


def test_per_step_line():
    counts = np.array([[1, 3, 5], [1, 5, 5]])  # [T=2, R=3], N=5
    line = report.per_step_line("Test", counts, 5)
    # Step 1: accuracies 0.6 and 1.0, sd 0.28284, 1.96 * sd / sqrt(2) = 0.392.
    assert line == ("Test accuracy after each inner step (95% CI over 2 tasks): "
                    "0: 0.2000 +- 0.0000, 1: 0.8000 +- 0.3920, 2: 1.0000 +- 0.0000")


def test_print_accuracies_adds_per_step_lines_only_with_steps():
    lines = []
    results = report.print_accuracies({"train": np.array([[0, 4], [2, 5]]),
                                       "test": np.array([3, 5])}, 5, lines.append)
    assert results == {"train": pytest.approx(0.9), "test": pytest.approx(0.8)}
    assert lines[0] == "Train accuracy: 0.9" and lines[1] == "Test accuracy: 0.8"
    assert lines[2].startswith("Train accuracy 95% CI: 0.900000 +- ")
    assert lines[3].startswith("Test accuracy 95% CI: 0.800000 +- ")
    assert len(lines) == 5 and lines[4].startswith("Train accuracy after each inner step")


def test_mse_line():
    errors = np.array([[2.0, 0.5], [4.0, 0.5]])  # sd 1.41421: 1.96 * sd / sqrt(2) = 1.96
    assert report.mse_line("after", errors) == (
        "Held-out MSE after meta-training (95% CI over 2 tasks): "
        "before adaptation 3.0000 +- 1.9600, after 1 steps 0.5000 +- 0.0000")


def test_write_per_step_counts_in_both_formats(tmp_path):
    counts = {"test": np.array([[1, 3, 5], [1, 5, 5]]), "train": np.array([[2, 4, 4]])}
    report.write(str(tmp_path / "r.json"), counts, 5)
    test = json.loads((tmp_path / "r.json").read_text())["splits"]["test"]
    assert test["correct"] == [5, 5] and test["accuracy"] == pytest.approx(1.0)
    assert test["correct_per_step"] == [[1, 3, 5], [1, 5, 5]]
    assert test["accuracy_per_step"] == pytest.approx([0.2, 0.8, 1.0])
    assert test["ci95_per_step"] == pytest.approx([0.0, 0.392, 0.0], abs=1e-4)
    report.write(str(tmp_path / "r.csv"), counts, 5)
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 3
    assert rows[1] == {"split": "test", "task": "1", "correct": "5", "queries": "5",
                       "accuracy": "1.0", "correct_after_step_0": "1",
                       "correct_after_step_1": "5", "correct_after_step_2": "5"}
    assert rows[2]["split"] == "train" and rows[2]["correct_after_step_1"] == "4"


def test_an_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / "r.json")
    report.write(path, {"test": np.array([1])}, 5)
    old = open(path).read()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", fail)
    with pytest.raises(KeyboardInterrupt):
        report.write(path, {"test": np.array([5])}, 5)
    assert open(path).read() == old


def test_unknown_format_is_refused_before_any_work(tmp_path):
    report.check_path("")
    with pytest.raises(ValueError, match=r"^results file 'out.txt': the name must end in one "
                                         r"of \('\.json', '\.csv'\)$"):
        report.check_path("out.txt")
    with pytest.raises(ValueError, match="results file"):
        report.write(str(tmp_path / "out.txt"), {"test": np.array([1])}, 5)
    assert not os.listdir(tmp_path)


def test_the_run_wrote_its_results(tiny_run):
    data = json.loads(open(tiny_run["results"]).read())
    assert set(data["splits"]) == {"train", "test"}
    assert all(s["num_tasks"] == 4 for s in data["splits"].values())
    lines = tiny_run["result"].stdout.splitlines()
    acc = float(next(l for l in lines if l.startswith("Test accuracy: ")).split(": ")[1])
    assert data["splits"]["test"]["accuracy"] == pytest.approx(acc)
    assert any(l.startswith("Test accuracy 95% CI: ") for l in lines)
