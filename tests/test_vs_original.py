"""The arithmetic of `benchmarks/vs_original.py`: each figure from its runs."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import vs_original  # noqa: E402


def _run(seconds, first, batches=(), rss=500.0):
    return {"seconds": seconds, "first_output_s": first, "batch_lines": list(batches),
            "rss_mib": rss}


def test_figures_are_differences_of_runs_after_their_first_line():
    # S=10, L=60, E=40 tasks per split, 2 splits; every run's first line at a
    # different time, which must cancel.
    runs = {"short": _run(20.0, 12.0),
            "long": _run(13.0 + 8.0 + 5.0, 13.0),  # +5 s for 50 more iterations: 100 ms each
            "monitored": _run(40.0, 14.0, [(0, 14.0), (10, 16.0), (50, 24.0)], rss=700.0),
            "evaluated": _run(12.0 + 8.0 + 16.0, 12.0)}  # +16 s for 80 tasks: 200 ms each
    fig = vs_original.figures(runs, (10, 60, 40), 2)
    assert fig["train_ms"] == pytest.approx(100.0)
    assert fig["monitored_ms"] == pytest.approx(1000 * (40.0 - 14.0 - 8.0) / 50)
    assert fig["in_run_ms"] == pytest.approx(1000 * (24.0 - 14.0) / 50)
    assert fig["eval_ms_per_task"] == pytest.approx(200.0)
    assert fig["fixed_s"] == pytest.approx(20.0 - 10 * 0.1 - 2 * 0.2)
    assert fig["first_output_s"] == 12.0 and fig["peak_rss_mib"] == 700.0


def test_the_evaluation_is_measured_against_a_base_run_of_whole_chunks():
    # B=16 tasks per split in `base`, 16 + 32 in `evaluated`: the tracing and
    # any padding are in both, so only the 32 * 2 extra tasks are charged.
    runs = {"short": _run(20.0, 12.0),
            "long": _run(13.0 + 8.0 + 5.0, 13.0),
            "monitored": _run(40.0, 14.0),
            "base": _run(12.0 + 8.0 + 9.0, 12.0),  # tracing, first meta-step, 32 tasks
            "evaluated": _run(12.0 + 8.0 + 9.0 + 6.4, 12.0)}  # + 64 tasks: 100 ms each
    fig = vs_original.figures(runs, (10, 60, 32), 2, base_tasks=16)
    assert fig["eval_ms_per_task"] == pytest.approx(100.0)
    assert fig["fixed_s"] == pytest.approx(29.0 - 10 * 0.1 - 2 * 16 * 0.1)
    assert fig["train_ms"] == pytest.approx(100.0)


def test_base_runs_exist_only_where_tasks_are_evaluated_together():
    kinds = vs_original.run_kinds(10, 60, 32, base=16)
    assert kinds["base"][-1] == "16" and kinds["evaluated"][-1] == "48"
    assert "base" not in vs_original.run_kinds(4, 16, 6, base=1)
    with pytest.raises(ValueError, match="E=40 .* not a multiple of 16"):
        vs_original.run_kinds(10, 60, 40, base=16)


def test_the_base_run_evaluates_as_many_tasks_as_a_run_adapts_at_once():
    # EVAL_BASE spells out build.TASKS_AT_ONCE so that the driver needs no
    # TensorFlow; if they drifted apart, the base run would pad its chunk.
    from supervised_reptile.build import TASKS_AT_ONCE
    for dataset, base in vs_original.EVAL_BASE.items():
        assert base == TASKS_AT_ONCE.get(dataset, 1), dataset


def test_runs_recorded_before_the_within_run_figure_have_none():
    runs = {k: {"seconds": 20.0, "first_output_s": 10.0, "rss_mib": 1.0}
            for k in ("short", "long", "monitored", "evaluated")}
    assert vs_original.figures(runs, (10, 60, 40), 2)["in_run_ms"] is None


def test_the_projection_uses_the_within_run_figure_where_there_is_one():
    base = {"train_ms": 100.0, "monitored_ms": 130.0, "eval_ms_per_task": 200.0,
            "fixed_s": 10.0, "first_output_s": 5.0, "peak_rss_mib": 1.0}
    with_lines = vs_original.summarise([dict(base, in_run_ms=120.0)], "omniglot", 1000)
    without = vs_original.summarise([dict(base, in_run_ms=None)], "omniglot", 1000)
    assert with_lines["paper_hours"] == pytest.approx((10 + 120 + 10000 * 2 * 0.2) / 3600)
    assert without["paper_hours"] == pytest.approx((10 + 130 + 10000 * 2 * 0.2) / 3600)
