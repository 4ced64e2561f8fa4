"""The MAML paper's sinusoid baselines: plain gradients in training, MAML's evaluation."""

import numpy as np
import tensorflow as tf

from supervised_reptile import sinusoid
from supervised_reptile.algorithms import MAML, Oracle, Pretrained
from supervised_reptile.episodes import TaskSpec


def _tasks(oracle=False):
    spec = TaskSpec(1, 10 + 5, 10, 2 + 1, tail_shots=5)
    return next(iter(sinusoid.train_dataset(spec, seed=1, meta_batch=3, oracle=oracle)))


def test_pretrained_trains_on_the_plain_gradient_of_every_point():
    learner = Pretrained(sinusoid.build_sinusoid_model(0), 0.01, meta_lr=0.01,
                         transductive=True, loss_fn=sinusoid.mse)
    tasks = _tasks()
    grads, losses = learner.meta_gradients(tasks)
    with tf.GradientTape() as tape:
        total = tf.add_n([sinusoid.mse(tasks.labels[m], learner.model(tasks.images[m]))
                          for m in range(3)]) / 3
    expected = tape.gradient(total, learner.model.trainable_variables)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses["inner_loss"], total, rtol=1e-5)
    # MAML differs: its gradient is taken after inner steps, on the query points.
    maml = MAML(sinusoid.build_sinusoid_model(0), 0.01, transductive=True, loss_fn=sinusoid.mse)
    assert not np.allclose(maml.meta_gradients(tasks)[0][0], grads[0])


def test_oracle_evaluation_keeps_its_weights_and_pretrained_fine_tunes():
    spec = TaskSpec(1, 10, 10, 4)
    for cls, oracle, moves in ((Pretrained, False, True), (Oracle, True, False)):
        learner = cls(sinusoid.build_sinusoid_model(0, sinusoid.input_size(oracle)), 0.05,
                      transductive=True, loss_fn=sinusoid.mse)
        episode = next(iter(sinusoid.eval_dataset(spec, 0, 10, 1, oracle=oracle)))
        steps = learner.adapt_and_predict(episode, every_step=True).numpy()
        assert steps.shape == (5, 100, 1)
        assert np.allclose(steps[0], steps[-1]) != moves
