"""Tests of evaluate.py: the helpers, and many tasks at once against one by one."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_conv_model

from supervised_reptile.algorithms import Reptile
from supervised_reptile.episodes import EvalEpisode
from supervised_reptile.evaluate import (accuracy, confidence_interval, correct_counts,
                                         evaluate, score_chunk, squared_errors)
from supervised_reptile.optimizers import Adam


def test_accuracy_counts_one_query_per_class():
    assert accuracy(np.array([5, 3, 4]), 5) == pytest.approx(12 / 15)
    # Per-step counts [T, R]: the last column (after the last step) counts.
    assert accuracy(np.array([[0, 5], [1, 3], [2, 4]]), 5) == pytest.approx(12 / 15)


def test_correct_counts_per_task_and_step():
    logits = np.zeros((2, 3, 4, 4), np.float32)  # [tasks, R, Q, N]
    logits[0, :, np.arange(4), np.arange(4)] = 1.0  # task 0: right at every step
    logits[1, 2, np.arange(4), [0, 1, 0, 0]] = 1.0  # task 1, last step: queries 0 and 1
    counts = correct_counts(logits, np.tile(np.arange(4), (2, 1)))
    assert counts.dtype == np.int64 and counts.shape == (2, 3)
    # Ties (all zeros) go to label 0 (argmax's first index): query 0 of task 1.
    np.testing.assert_array_equal(counts, [[4, 4, 4], [1, 1, 2]])


def test_squared_errors_per_task_and_step():
    outputs = np.array([[[[1.0], [2.0]], [[0.0], [0.0]]]], np.float32)  # [1, R=2, Q=2, 1]
    targets = np.array([[0.0, 4.0]])
    errors = squared_errors(outputs, targets)
    assert errors.dtype == np.float64 and errors.shape == (1, 2)
    np.testing.assert_allclose(errors, [[(1 + 4) / 2, (0 + 16) / 2]])


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
    return Reptile(tiny_conv_model(3, seed=1), Adam(1e-3))


def _tasks(count, seed=0):
    rng = np.random.default_rng(seed)
    return [EvalEpisode(tf.constant(rng.normal(size=(6, 28, 28)).astype(np.float32)),
                        tf.constant(np.repeat(np.arange(3, dtype=np.int32), 2)),
                        tf.constant(rng.integers(0, 6, (3, 4)).astype(np.int32)),
                        tf.constant(rng.normal(size=(3, 28, 28)).astype(np.float32)),
                        tf.constant(np.arange(3, dtype=np.int32)))
            for _ in range(count)]


@pytest.mark.slow
def test_evaluate_at_once_counts_as_one_by_one_without_retracing():
    alg = _tiny_algorithm()
    tasks = _tasks(10)
    one = evaluate(alg, tasks, 10, tasks_at_once=1)
    assert alg.tracing_counts()["predict"] == 1 and alg.tracing_counts()["predict_many"] == 0
    at_once = evaluate(alg, tasks, 10, tasks_at_once=4)  # 4 + 4 + 2 padded to 4
    assert alg.tracing_counts()["predict_many"] == 1
    np.testing.assert_array_equal(at_once, one)
    assert at_once.dtype == np.int64 and at_once.shape == (10, 1)
    for _ in range(3):  # no retracing across repeated evaluations
        evaluate(alg, tasks, 10, tasks_at_once=4)
    assert alg.tracing_counts() == {"meta_step": 0, "predict": 1, "predict_many": 1}
    with pytest.raises(ValueError, match="only 10 episodes"):
        evaluate(alg, tasks, 11, tasks_at_once=4)
    with pytest.raises(ValueError, match="^tasks_at_once must be >= 1, got 0$"):
        evaluate(alg, tasks, 10, tasks_at_once=0)


@pytest.mark.slow
def test_every_step_counts_one_column_per_step():
    alg = Reptile(tiny_conv_model(3, seed=1), Adam(1e-3), transductive=True)
    tasks = _tasks(5)
    counts = evaluate(alg, tasks, 5, tasks_at_once=2, every_step=True)
    assert counts.dtype == np.int64 and counts.shape == (5, 3 + 1)  # 3 eval steps, and before
    np.testing.assert_array_equal(evaluate(alg, tasks, 5, tasks_at_once=1, every_step=True),
                                  counts)
    # Column 0: the meta-model itself; the last column: after the last step.
    for t, task in enumerate(tasks):
        logits = alg.adapt_and_predict(task, every_step=True).numpy()
        assert logits.shape == (3 + 1, 3, 3)
        np.testing.assert_allclose(logits[0], alg.model(task.query_images, training=True),
                                   atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(logits[-1], alg.adapt_and_predict(task).numpy()[0],
                                   atol=1e-5, rtol=1e-5)
        assert counts[t, 0] == np.sum(logits[0].argmax(-1) == task.query_labels.numpy())
    np.testing.assert_array_equal(counts[:, -1:], evaluate(alg, tasks, 5, tasks_at_once=2))


@pytest.mark.slow
def test_score_chunk_scores_a_list_of_tasks():
    alg = _tiny_algorithm()
    tasks = _tasks(3)
    counts = score_chunk(alg, tasks)  # stacked, as Omniglot's monitoring adapts its tasks
    assert counts.shape == (3, 1) and alg.tracing_counts()["predict_many"] == 1
    np.testing.assert_array_equal(counts, score_chunk(alg, tasks, size=1))
    padded = score_chunk(alg, tasks[:2], size=3)  # padded with copies of the last task
    np.testing.assert_array_equal(padded, counts[:2])
    assert alg.tracing_counts()["predict_many"] == 1


def test_on_task_reports_progress():
    done = []
    evaluate(_tiny_algorithm(), _tasks(4), 4, tasks_at_once=2, on_task=done.append)
    assert done == [2, 4]


def test_on_task_reaches_the_task_count_after_a_partial_chunk():
    done = []
    evaluate(_tiny_algorithm(), _tasks(5), 5, tasks_at_once=2, on_task=done.append)
    assert done == [2, 4, 5]
