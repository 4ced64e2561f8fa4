import numpy as np
import pytest

from supervised_reptile.train import meta_step_size, train


def test_annealing_is_linear_and_never_reaches_the_final_value():
    assert meta_step_size(0, 100, 1.0, 0.0) == 1.0
    assert meta_step_size(50, 100, 1.0, 0.0) == pytest.approx(0.5)
    assert meta_step_size(99, 100, 1.0, 0.0) == pytest.approx(0.01)
    assert meta_step_size(7, 10, 0.1, 0.1) == pytest.approx(0.1)


class _FakeAlgorithm:
    """Records meta-steps; predicts label 0 for every query."""

    def __init__(self):
        self.steps = []

    def meta_step(self, episodes, size):
        self.steps.append((episodes, size))

    def adapt_and_predict(self, episode):
        return np.zeros_like(episode.query_labels)


class _Episode:
    def __init__(self):
        self.query_labels = np.arange(4)


class _Writer:
    def __init__(self):
        self.flushed = 0

    def as_default(self):
        import contextlib
        return contextlib.nullcontext()

    def flush(self):
        self.flushed += 1


def test_schedule_of_evaluations_and_checkpoints(monkeypatch):
    scalars = []
    monkeypatch.setattr("tensorflow.summary.scalar",
                        lambda name, value, step: scalars.append((name, value, step)))
    alg, saved, lines = _FakeAlgorithm(), [], []
    writers = {"train": _Writer(), "test": _Writer()}
    monitor = {"train": iter(_Episode, None), "test": iter(_Episode, None)}
    next_it = train(alg, iter(range(1000)), monitor, writers, saved.append, meta_iters=250,
                    meta_step=1.0, meta_step_final=0.0, eval_interval=100, num_classes=4,
                    start_iteration=0, log_fn=lines.append)
    assert next_it == 250
    assert [s for _, s in alg.steps][:2] == [1.0, pytest.approx(1 - 1 / 250)]
    assert [e for e, _ in alg.steps] == list(range(250))
    assert lines == ["batch 0: train=0.250000 test=0.250000",
                     "batch 100: train=0.250000 test=0.250000",
                     "batch 200: train=0.250000 test=0.250000"]
    assert saved == [0, 100, 200, 249]
    assert [s[2] for s in scalars] == [0, 0, 100, 100, 200, 200]
    assert writers["test"].flushed == 3


def test_nothing_left_to_run_returns_the_start():
    alg = _FakeAlgorithm()
    next_it = train(alg, iter(range(10)), {}, {}, lambda i: None, meta_iters=5, meta_step=1.0,
                    meta_step_final=0.0, eval_interval=1, num_classes=4, start_iteration=5)
    assert next_it == 5 and alg.steps == []
