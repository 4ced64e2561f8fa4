"""Tests of `algorithms.task_batch`: many tasks' forward pass at once. The
schedules and evaluations built on it are tested in tests/test_schedules.py."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import models
from supervised_reptile.algorithms import Reptile, task_batch
from supervised_reptile.optimizers import SGD

N = 3


def _stacked(models_):
    return [tf.stack([tf.convert_to_tensor(m.trainable_variables[i]) for m in models_])
            for i in range(len(models_[0].trainable_variables))]


@pytest.mark.parametrize("builder,shape", [(models.build_omniglot_model, (28, 28)),
                                           (models.build_miniimagenet_model, (84, 84, 3))])
def test_forward_equals_each_task_s_keras_model(builder, shape):
    nets = [builder(N, seed=s) for s in range(3)]  # distinct weights per task
    images = np.random.default_rng(0).normal(size=(3, 7, *shape)).astype(np.float32)
    logits = task_batch.forward(nets[0], _stacked(nets), tf.constant(images)).numpy()
    assert logits.shape == (3, 7, N)
    for t, net in enumerate(nets):
        np.testing.assert_allclose(logits[t], net(images[t], training=True).numpy(),
                                   atol=2e-5, rtol=1e-5)


def test_unsupported_layers_are_named():
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv_relu")(inputs)
    net = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(ValueError, match="'conv_relu' \\(Conv2D\\) is not supported"):
        task_batch.check_supported(net)
    # The at-once schedule refuses it when the algorithm is built, before any work.
    with pytest.raises(ValueError, match="'conv_relu' \\(Conv2D\\) is not supported"):
        Reptile(net, SGD(0.1), schedule="at-once")
    Reptile(net, SGD(0.1), schedule="per-task")  # one task at a time needs no support


def test_grouped_layout_round_trip():
    net = models.build_omniglot_model(N)
    stacked = _stacked([net, models.build_omniglot_model(N, seed=1)])
    grouped = task_batch.to_grouped(stacked)
    assert grouped[0].shape == (3, 3, 1, 2 * 64) and grouped[-1].shape == stacked[-1].shape
    for a, b in zip(task_batch.from_grouped(grouped, 2), stacked):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    images = tf.random.normal([2, 4, 28, 28])
    np.testing.assert_allclose(task_batch.forward(net, grouped, images).numpy(),
                               task_batch.forward(net, stacked, images).numpy(), atol=1e-6)
