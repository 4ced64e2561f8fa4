"""Tests of evaluate.py: the helpers, and many tasks at once against one by one."""

import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import models
from supervised_reptile.algorithms import Reptile
from supervised_reptile.episodes import EvalEpisode
from supervised_reptile.evaluate import accuracy, confidence_interval, evaluate
from supervised_reptile.optimizers import Adam


def test_accuracy_counts_one_query_per_class():
    assert accuracy(np.array([5, 3, 4]), 5) == pytest.approx(12 / 15)


def test_confidence_interval_matches_the_formula():
    values = np.array([0.2, 0.4, 0.6, 1.0])
    mean, half = confidence_interval(values)
    assert mean == pytest.approx(0.55)
    sd = np.sqrt(((values - 0.55) ** 2).sum() / 3)
    assert half == pytest.approx(1.96 * sd / 2)


def test_confidence_interval_edge_cases():
    assert confidence_interval(np.array([0.7])) == (0.7, 0.0)
    with pytest.raises(ValueError, match="shape"):
        confidence_interval(np.array([]))


# -- evaluate: many tasks at once ------------------------------------------------

def _tiny_algorithm():
    return Reptile(models.build_omniglot_model(3, seed=1), Adam(1e-3))


def _tasks(count, seed=0):
    rng = np.random.default_rng(seed)
    return [EvalEpisode(tf.constant(rng.normal(size=(6, 28, 28)).astype(np.float32)),
                        tf.constant(np.repeat(np.arange(3, dtype=np.int32), 2)),
                        tf.constant(rng.integers(0, 6, (3, 4)).astype(np.int32)),
                        tf.constant(rng.normal(size=(3, 28, 28)).astype(np.float32)),
                        tf.constant(np.arange(3, dtype=np.int32)))
            for _ in range(count)]


def test_evaluate_at_once_counts_as_one_by_one_without_retracing():
    alg = _tiny_algorithm()
    tasks = _tasks(10)
    one = evaluate(alg, tasks, 10, tasks_at_once=1)
    traces = alg.num_traces
    at_once = evaluate(alg, tasks, 10, tasks_at_once=4)  # 4 + 4 + 2 padded to 4
    assert alg.num_traces == traces + 1
    np.testing.assert_array_equal(at_once, one)
    assert at_once.dtype == np.int64 and at_once.shape == (10,)
    for _ in range(3):  # no retracing across repeated evaluations
        evaluate(alg, tasks, 10, tasks_at_once=4)
    assert alg.num_traces == traces + 1
    with pytest.raises(ValueError, match="only 10 episodes"):
        evaluate(alg, tasks, 11, tasks_at_once=4)
    with pytest.raises(ValueError, match="--eval-tasks-at-once must be >= 1, got 0"):
        evaluate(alg, tasks, 10, tasks_at_once=0)
