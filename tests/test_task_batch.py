"""Tests of `task_batch` (many tasks' forward pass at once) and of the
algorithm options built on it: per-task inner state, parallel meta-training,
and evaluation of many tasks at once."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import episodes, models, task_batch
from supervised_reptile.algorithms import FOML, Reptile
from supervised_reptile.episodes import EvalEpisode, TrainEpisode
from supervised_reptile.optimizers import SGD, Adam

N, SHOTS, BATCH, ITERS = 3, 4, 5, 3


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
    with pytest.raises(ValueError, match="not supported"):
        Reptile(net, SGD(0.1), parallel_tasks=True)


def test_state_broadcast_keeps_scalars_and_mean_inverts_it():
    state = (tf.constant(3.0), [tf.ones([2, 2])], [tf.zeros([4])])
    many = task_batch.broadcast_state(state, 5)
    assert many[0].shape == () and many[1][0].shape == (5, 2, 2) and many[2][0].shape == (5, 4)
    back = task_batch.mean_state(many)
    for a, b in zip(tf.nest.flatten(back), tf.nest.flatten(state)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


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


# -- algorithms --------------------------------------------------------------

def _train_episodes(meta_batch=3, tail_shots=0, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(meta_batch, N * SHOTS, 28, 28)).astype(np.float32)
    labels = np.tile(np.repeat(np.arange(N, dtype=np.int32), SHOTS), (meta_batch, 1))
    rest = np.array([c * SHOTS + r for c in range(N) for r in range(tail_shots, SHOTS)])
    tail = np.array([[c * SHOTS + r for r in range(tail_shots) for c in range(N)]] * meta_batch,
                    np.int32).reshape(meta_batch, -1)
    nb = ITERS - (1 if tail_shots else 0)
    batches = np.stack([rest[episodes.mini_batches(tf.constant([seed, m], tf.int64), len(rest),
                                                   BATCH, nb, False).numpy()]
                        for m in range(meta_batch)]).astype(np.int32)
    return TrainEpisode(*(tf.constant(a) for a in (images, labels, batches, tail)))


def _eval_episodes(count, k=2, seed=5):
    rng = np.random.default_rng(seed)
    return [EvalEpisode(tf.constant(rng.normal(size=(N * k, 28, 28)).astype(np.float32)),
                        tf.constant(np.repeat(np.arange(N, dtype=np.int32), k)),
                        tf.constant(rng.integers(0, N * k, (4, BATCH)).astype(np.int32)),
                        tf.constant(rng.normal(size=(N, 28, 28)).astype(np.float32)),
                        tf.constant(np.arange(N, dtype=np.int32)))
            for _ in range(count)]


def _algorithm(cls=Reptile, optimizer="adam", lr=1e-3, **kwargs):
    opt = Adam(lr) if optimizer == "adam" else SGD(lr)
    return cls(models.build_omniglot_model(N, seed=0), opt, **kwargs)


def _params(alg):
    """Trainable weights without the conv biases (they feed batch norm, have
    no effect and drift freely), then the optimizer state."""
    return ([v.numpy() for v in alg.model.trainable_variables
             if not (v.path.startswith("conv2d") and v.path.endswith("bias"))]
            + [v.numpy() for v in alg.optimizer.state_variables])


@pytest.mark.parametrize("cls,optimizer,tail,atol", [
    (Reptile, "sgd", 0, 2e-6), (FOML, "sgd", 1, 2e-6), (Reptile, "adam", 0, 2e-4),
    (FOML, "adam", 0, 2e-4)])
def test_parallel_equals_sequential_per_task(cls, optimizer, tail, atol):
    lr = 1e-2 if optimizer == "sgd" else 1e-3
    seq = _algorithm(cls, optimizer, lr, inner_state="per-task")
    par = _algorithm(cls, optimizer, lr, parallel_tasks=True)
    assert par.inner_state == "per-task"
    for seed in range(2):  # two meta-iterations: the combined state carries over
        ep = _train_episodes(tail_shots=tail, seed=seed)
        loss_seq = seq.meta_step(ep, 0.7)["inner_loss"]
        loss_par = par.meta_step(ep, 0.7)["inner_loss"]
        np.testing.assert_allclose(loss_par.numpy(), loss_seq.numpy(), rtol=1e-5)
    for a, b in zip(_params(par), _params(seq)):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-3)
    assert par.num_traces == 1 and seq.num_traces == 1


def test_per_task_state_is_the_mean_of_independent_tasks():
    """Per-task: each task starts from the same state; afterwards, the state is
    the mean of the tasks' final states, the weights the usual Reptile mean."""
    ep = _train_episodes(meta_batch=2)
    alg = _algorithm(inner_state="per-task")
    alg.meta_step(ep, 1.0)
    singles = []
    for m in range(2):  # each task alone, from the fresh start (shared = per-task for one)
        one = _algorithm()
        one.meta_step(TrainEpisode(*(t[m:m + 1] for t in ep)), 1.0)
        singles.append(_params(one))
    assert float(alg.optimizer.step) == ITERS
    for got, *per_task in zip(_params(alg), *singles):
        np.testing.assert_allclose(got, np.mean(per_task, axis=0), atol=1e-6, rtol=1e-5)


def test_one_task_per_task_state_equals_shared_exactly():
    ep = _train_episodes(meta_batch=1)
    a, b = _algorithm(), _algorithm(inner_state="per-task")
    a.meta_step(ep, 0.5)
    b.meta_step(ep, 0.5)
    for x, y in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(x, y)


def test_invalid_state_options():
    with pytest.raises(ValueError, match="--parallel-tasks needs --inner-state per-task"):
        _algorithm(inner_state="shared", parallel_tasks=True)
    with pytest.raises(ValueError, match="--inner-state 'mine'"):
        _algorithm(inner_state="mine")


@pytest.mark.parametrize("transductive", [False, True])
def test_many_tasks_predict_as_one_by_one_and_change_nothing(transductive):
    alg = _algorithm(transductive=transductive)
    alg.meta_step(_train_episodes(), 0.5)  # non-trivial Adam state
    before = [v.numpy() for v in alg.model.variables + alg.optimizer.state_variables]
    eps = _eval_episodes(5)
    one = np.stack([alg.adapt_and_predict(e).numpy() for e in eps])
    many = alg.adapt_and_predict_many(EvalEpisode(*(tf.stack(f) for f in zip(*eps))))
    np.testing.assert_array_equal(many.numpy(), one)
    for b, v in zip(before, alg.model.variables + alg.optimizer.state_variables):
        np.testing.assert_array_equal(b, v.numpy())


@pytest.mark.parametrize("options", [{}, {"parallel_tasks": True}])
def test_number_of_traces_stays_constant(options):
    """One trace per compiled function (meta-step, one task, many tasks), however
    many meta-steps and evaluations follow with new data and step sizes."""
    alg = _algorithm(**options)
    eps = _eval_episodes(3)
    many = EvalEpisode(*(tf.stack(f) for f in zip(*eps)))
    for i in range(6):
        alg.meta_step(_train_episodes(meta_batch=2, seed=i), 1.0 - i / 6)
        alg.adapt_and_predict(eps[i % 3])
        alg.adapt_and_predict_many(many)
        assert alg.num_traces == 3, i
