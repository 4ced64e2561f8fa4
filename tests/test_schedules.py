"""Tests of `algorithms.schedules` (how a meta-batch's tasks share the inner
optimizer state: shared, per task, all at once) and of evaluating many tasks
at once (`adapt_and_predict_many`), with the compiled functions traced once."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_conv_model
from supervised_reptile import episodes
from supervised_reptile.algorithms import FOML, Reptile, schedules
from supervised_reptile.episodes import EvalEpisode, TrainEpisode
from supervised_reptile.optimizers import SGD, Adam

pytestmark = pytest.mark.slow  # every test here traces whole meta-steps

N, SHOTS, BATCH, ITERS = 3, 4, 5, 3


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


def _stack(eps):
    return EvalEpisode(*(tf.stack(f) for f in zip(*eps)))


def _algorithm(cls=Reptile, optimizer="adam", lr=1e-3, **kwargs):
    opt = Adam(lr) if optimizer == "adam" else SGD(lr)
    return cls(tiny_conv_model(N, seed=0), opt, **kwargs)


def _params(alg):
    """Trainable weights without the conv biases (they feed batch norm, have
    no effect and drift freely), then the optimizer state."""
    return ([v.numpy() for v in alg.model.trainable_variables
             if not (v.path.startswith("conv2d") and v.path.endswith("bias"))]
            + [v.numpy() for v in alg.optimizer.state_variables])


def test_schedule_names():
    assert schedules.NAMES == ("shared", "per-task", "at-once")
    assert isinstance(_algorithm().schedule, schedules.Shared)
    assert isinstance(_algorithm(schedule="per-task").schedule, schedules.PerTask)
    assert isinstance(_algorithm(schedule="at-once").schedule, schedules.AtOnce)
    mine = schedules.PerTask()
    assert _algorithm(schedule=mine).schedule is mine


@pytest.mark.parametrize("cls,optimizer,tail,atol", [
    (Reptile, "sgd", 0, 2e-6), (FOML, "sgd", 1, 2e-6), (Reptile, "adam", 0, 2e-4),
    (FOML, "adam", 0, 2e-4)])
def test_at_once_equals_per_task(cls, optimizer, tail, atol):
    lr = 1e-2 if optimizer == "sgd" else 1e-3
    seq = _algorithm(cls, optimizer, lr, schedule="per-task")
    par = _algorithm(cls, optimizer, lr, schedule="at-once")
    for seed in range(2):  # two meta-iterations: the combined state carries over
        ep = _train_episodes(tail_shots=tail, seed=seed)
        loss_seq = seq.meta_step(ep, 0.7)["inner_loss"]
        loss_par = par.meta_step(ep, 0.7)["inner_loss"]
        np.testing.assert_allclose(loss_par.numpy(), loss_seq.numpy(), rtol=1e-5)
    for a, b in zip(_params(par), _params(seq)):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-3)
    assert par.tracing_counts()["meta_step"] == 1 and seq.tracing_counts()["meta_step"] == 1


def test_per_task_state_is_the_mean_of_independent_tasks():
    """Per-task: each task starts from the same state; afterwards, the state is
    the mean of the tasks' final states, the weights the usual Reptile mean."""
    ep = _train_episodes(meta_batch=2)
    alg = _algorithm(schedule="per-task")
    alg.meta_step(ep, 1.0)
    singles = []
    for m in range(2):  # each task alone, from the fresh start (shared = per-task for one)
        one = _algorithm()
        one.meta_step(TrainEpisode(*(t[m:m + 1] for t in ep)), 1.0)
        singles.append(_params(one))
    assert float(alg.optimizer.step) == ITERS
    for got, *per_task in zip(_params(alg), *singles):
        np.testing.assert_allclose(got, np.mean(per_task, axis=0), atol=1e-6, rtol=1e-5)


def test_shared_state_flows_from_task_to_task():
    """Shared (the original): the state after a meta-iteration is the last
    task's, which started from the one before it."""
    ep = _train_episodes(meta_batch=2)
    alg = _algorithm()
    alg.meta_step(ep, 1.0)
    assert float(alg.optimizer.step) == 2 * ITERS


def test_one_task_per_task_state_equals_shared_exactly():
    ep = _train_episodes(meta_batch=1)
    a, b = _algorithm(), _algorithm(schedule="per-task")
    a.meta_step(ep, 0.5)
    b.meta_step(ep, 0.5)
    for x, y in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(x, y)


def test_invalid_schedule_options():
    with pytest.raises(ValueError, match="unknown task schedule 'mine'; valid: "
                                         "\\('shared', 'per-task', 'at-once'\\)"):
        _algorithm(schedule="mine")
    with pytest.raises(ValueError, match="unknown task schedule 'per_task'"):
        schedules.make("per_task")
    with pytest.raises(TypeError):  # the options the schedule replaced
        _algorithm(inner_state="per-task")
    with pytest.raises(TypeError):
        _algorithm(parallel_tasks=True)
    alg = _algorithm(schedule="at-once")  # one inner loop cannot be split across replicas
    old, frozen = alg.read_weights()
    with pytest.raises(ValueError, match="at-once schedule .* cannot be split across replicas"):
        alg.task_updates(old, frozen, alg.inner_state(), _train_episodes(meta_batch=2),
                         first=1, stride=2)


@pytest.mark.parametrize("transductive", [False, True])
def test_many_tasks_predict_as_one_by_one_and_change_nothing(transductive):
    alg = _algorithm(transductive=transductive)
    alg.meta_step(_train_episodes(), 0.5)  # non-trivial Adam state
    before = [v.numpy() for v in alg.model.variables + alg.optimizer.state_variables]
    eps = _eval_episodes(5)
    one = np.stack([alg.adapt_and_predict(e).numpy() for e in eps])
    many = alg.adapt_and_predict_many(_stack(eps)).numpy()
    assert one.shape == (5, 1, N, N) and one.dtype == np.float32
    assert many.shape == one.shape and many.dtype == np.float32
    # Logits of two implementations (grouped convolutions vs one task's):
    # float32 rounding, and the same predictions.
    np.testing.assert_allclose(many, one, atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(many.argmax(-1), one.argmax(-1))
    for b, v in zip(before, alg.model.variables + alg.optimizer.state_variables):
        np.testing.assert_array_equal(b, v.numpy())


def test_many_tasks_every_step_as_one_by_one():
    alg = _algorithm(transductive=True)
    eps = _eval_episodes(3)
    one = np.stack([alg.adapt_and_predict(e, every_step=True).numpy() for e in eps])
    many = alg.adapt_and_predict_many(_stack(eps), every_step=True).numpy()
    assert one.shape == many.shape == (3, 4 + 1, N, N)  # 4 eval steps, and before them
    np.testing.assert_allclose(many, one, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("schedule", ["shared", "at-once"])
def test_number_of_traces_stays_constant(schedule):
    """One trace per compiled function (meta-step, one task, many tasks), however
    many meta-steps and evaluations follow with new data and step sizes."""
    alg = _algorithm(schedule=schedule)
    eps = _eval_episodes(3)
    many = _stack(eps)
    for i in range(6):
        alg.meta_step(_train_episodes(meta_batch=2, seed=i), 1.0 - i / 6)
        alg.adapt_and_predict(eps[i % 3])
        alg.adapt_and_predict_many(many)
        assert alg.tracing_counts() == {"meta_step": 1, "predict": 1, "predict_many": 1}, i
