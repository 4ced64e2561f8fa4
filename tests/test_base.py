"""The one meta-learner interface: every algorithm and the distributed wrapper implement it."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_conv_model
from supervised_reptile import distribute
from supervised_reptile.algorithms import FOML, MAML, Algorithm, MetaLearner, Reptile
from supervised_reptile.episodes import EvalEpisode, TrainEpisode
from supervised_reptile.evaluate import evaluate
from supervised_reptile.optimizers import Adam

N = 3


def _learners():
    return [Reptile(tiny_conv_model(N, seed=0), Adam(1e-3)),
            FOML(tiny_conv_model(N, seed=0), Adam(1e-3)),
            MAML(tiny_conv_model(N, seed=0), 0.1)]


def _train_tasks(seed=0):
    rng = np.random.default_rng(seed)
    return TrainEpisode(tf.constant(rng.normal(size=(2, 8, 28, 28)).astype(np.float32)),
                        tf.constant(np.tile(np.repeat(np.arange(N - 1, dtype=np.int32), 4), (2, 1))
                                    % N),
                        tf.constant(np.tile(np.arange(4, dtype=np.int32), (2, 2, 1))),
                        tf.constant(np.tile(np.arange(4, 8, dtype=np.int32), (2, 1))))


def _eval_tasks(count=3):
    rng = np.random.default_rng(7)
    return [EvalEpisode(tf.constant(rng.normal(size=(2 * N, 28, 28)).astype(np.float32)),
                        tf.constant(np.repeat(np.arange(N, dtype=np.int32), 2)),
                        tf.constant(np.tile(np.arange(2 * N, dtype=np.int32), (2, 1))),
                        tf.constant(rng.normal(size=(N, 28, 28)).astype(np.float32)),
                        tf.constant(np.arange(N, dtype=np.int32))) for _ in range(count)]


def test_the_interface_is_abstract():
    with pytest.raises(TypeError):
        MetaLearner()
    with pytest.raises(TypeError):  # an Algorithm without its two hooks
        Algorithm(tiny_conv_model(N), None, Adam(1e-3))


@pytest.mark.slow
def test_the_wrapper_with_one_replica_is_the_algorithm_itself():
    """Through the interface alone, `DistributedLearner` on one device gives
    the same bits as the algorithm it wraps, in training and evaluation."""
    for learner, twin in zip(_learners(), _learners()):
        wrapped = distribute.DistributedLearner(twin, tf.distribute.get_strategy())
        assert isinstance(learner, MetaLearner) and isinstance(wrapped, MetaLearner)
        for seed in range(2):
            a = learner.meta_step(_train_tasks(seed), 0.5)
            b = wrapped.meta_step(_train_tasks(seed), 0.5)
            assert {k: float(v) for k, v in a.items()} == {k: float(v) for k, v in b.items()}
        for x, y in zip(learner.model.trainable_variables, wrapped.model.trainable_variables):
            np.testing.assert_array_equal(x.numpy(), y.numpy())
        tasks = _eval_tasks()
        np.testing.assert_array_equal(evaluate(learner, tasks, 3, 3, every_step=True),
                                      evaluate(wrapped, tasks, 3, 3, every_step=True))
