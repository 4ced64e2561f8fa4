import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile.algorithms.base import MetaLearner
from supervised_reptile.episodes import EvalEpisode
from supervised_reptile.train import meta_step_size, train


def test_annealing_is_linear_and_never_reaches_the_final_value():
    assert meta_step_size(0, 100, 1.0, 0.0) == 1.0
    assert meta_step_size(50, 100, 1.0, 0.0) == pytest.approx(0.5)
    assert meta_step_size(99, 100, 1.0, 0.0) == pytest.approx(0.01)
    assert meta_step_size(7, 10, 0.1, 0.1) == pytest.approx(0.1)


class _FakeAlgorithm(MetaLearner):
    """Records meta-steps and predictions; predicts label 0 for every query."""

    model = optimizer = None
    transductive = False

    def __init__(self):
        self.steps, self.predicted = [], []

    def meta_step(self, episodes, size):
        self.steps.append((episodes, size))
        return {"inner_loss": tf.constant(1.0)}

    def adapt_and_predict(self, episode, every_step=False):
        return self.adapt_and_predict_many(
            tf.nest.map_structure(lambda x: x[None], episode), every_step)[0]

    def adapt_and_predict_many(self, episodes, every_step=False):
        tasks, queries = episodes.query_labels.shape
        self.predicted.append(tasks)
        logits = np.zeros((tasks, 1, queries, queries), np.float32)
        logits[..., 0] = 1.0  # [tasks, R, Q, N]: every query is given label 0
        return tf.constant(logits)

    def adapt(self, episode):
        raise NotImplementedError


def _episode():
    """An evaluation task with 4 queries, labels 0..3."""
    return EvalEpisode(tf.zeros([4, 2]), tf.range(4), tf.zeros([1, 2], tf.int32), tf.zeros([4, 2]),
                       tf.range(4))


class _Recorder:
    """Records what `summaries.Summaries` would write."""

    def __init__(self):
        self.steps, self.evaluations = [], []

    def train_step(self, iteration, stats, step_size, seconds, tasks):
        self.steps.append(iteration)

    def evaluated(self, iteration, accuracies, seconds):
        self.evaluations.append((iteration, accuracies))


def test_schedule_of_evaluations_and_checkpoints():
    alg, saved, lines, recorder = _FakeAlgorithm(), [], [], _Recorder()
    monitor = {"train": iter(_episode, None), "test": iter(_episode, None)}
    next_it = train(alg, iter(range(1000)), monitor, saved.append, meta_iters=250,
                    meta_step=1.0, meta_step_final=0.0, eval_interval=100, num_classes=4,
                    start_iteration=0, log_fn=lines.append, recorder=recorder)
    assert next_it == 250
    assert [s for _, s in alg.steps][:2] == [1.0, pytest.approx(1 - 1 / 250)]
    assert [e for e, _ in alg.steps] == list(range(250))
    assert lines == ["batch 0: train=0.250000 test=0.250000",
                     "batch 100: train=0.250000 test=0.250000",
                     "batch 200: train=0.250000 test=0.250000"]
    assert saved == [0, 100, 200, 249]
    assert recorder.evaluations == [(i, {"train": 0.25, "test": 0.25}) for i in (0, 100, 200)]
    assert recorder.steps == list(range(250))
    assert alg.predicted == [2, 2, 2]  # both splits' tasks adapted together


def test_monitoring_one_task_at_a_time():
    alg, lines = _FakeAlgorithm(), []
    monitor = {"train": iter(_episode, None), "test": iter(_episode, None)}
    train(alg, iter(range(10)), monitor, lambda i: None, meta_iters=2, meta_step=1.0,
          meta_step_final=0.0, eval_interval=1, num_classes=4, log_fn=lines.append,
          tasks_at_once=1)
    assert alg.predicted == [1, 1, 1, 1]
    assert lines == ["batch 0: train=0.250000 test=0.250000",
                     "batch 1: train=0.250000 test=0.250000"]


def test_one_monitored_split():
    alg, lines = _FakeAlgorithm(), []
    train(alg, iter(range(10)), {"test": iter(_episode, None)}, lambda i: None, meta_iters=2, meta_step=1.0, meta_step_final=0.0, eval_interval=1,
          num_classes=4, log_fn=lines.append)
    assert lines == ["batch 0: test=0.250000", "batch 1: test=0.250000"]


def test_nothing_left_to_run_returns_the_start():
    alg = _FakeAlgorithm()
    next_it = train(alg, iter(range(10)), {}, lambda i: None, meta_iters=5, meta_step=1.0,
                    meta_step_final=0.0, eval_interval=1, num_classes=4, start_iteration=5)
    assert next_it == 5 and alg.steps == []
