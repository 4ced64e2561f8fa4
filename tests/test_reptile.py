"""Golden checks of Reptile and FOML against an eager re-statement of the original.

The reference below is the original's algorithm written the TF1 way: a Keras
model whose variables are assigned, a GradientTape per inner step, and one
Keras optimizer (Adam with beta1=0, epsilon=1e-8, or SGD) shared by every task.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import episodes, models
from supervised_reptile.algorithms import FOML, Reptile
from supervised_reptile.episodes import EvalEpisode, TrainEpisode
from supervised_reptile.optimizers import SGD, Adam

N, SHOTS, BATCH, ITERS = 3, 4, 5, 3


def _train_episodes(meta_batch=2, tail_shots=0, seed=0, replacement=False):
    rng = np.random.default_rng(seed)
    size = N * SHOTS
    images = rng.normal(size=(meta_batch, size, 28, 28)).astype(np.float32)
    labels = np.tile(np.repeat(np.arange(N, dtype=np.int32), SHOTS), (meta_batch, 1))
    rest = [c * SHOTS + r for c in range(N) for r in range(tail_shots, SHOTS)]
    tail = np.array([[c * SHOTS + r for r in range(tail_shots) for c in range(N)]] * meta_batch,
                    np.int32).reshape(meta_batch, -1)
    num_batches = ITERS - (1 if tail_shots else 0)
    batches = np.stack([np.array(rest)[episodes.mini_batches(
        tf.constant([seed, m], tf.int64), len(rest), BATCH, num_batches, replacement).numpy()]
        for m in range(meta_batch)]).astype(np.int32)
    return TrainEpisode(*(tf.constant(a) for a in (images, labels, batches, tail)))


def _eval_episode(k=2, seed=5):
    rng = np.random.default_rng(seed)
    return EvalEpisode(tf.constant(rng.normal(size=(N * k, 28, 28)).astype(np.float32)),
                       tf.constant(np.repeat(np.arange(N, dtype=np.int32), k)),
                       tf.constant(rng.integers(0, N * k, size=(4, BATCH)).astype(np.int32)),
                       tf.constant(rng.normal(size=(N, 28, 28)).astype(np.float32)),
                       tf.constant(np.arange(N, dtype=np.int32)))


def _reference_meta_step(model, opt, eps, foml, weight_decay=1.0):
    """The original's train_step, eagerly, on `model`'s variables."""
    def step(ep, m, batch):
        for v in model.trainable_variables:
            v.assign(v * weight_decay)
        with tf.GradientTape() as tape:
            logits = model(tf.gather(ep.images[m], batch), training=True)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
                tf.gather(ep.labels[m], batch), logits))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables))

    def run(ep):
        old = [v.numpy() for v in model.trainable_variables]
        results = []
        for m in range(ep.images.shape[0]):
            for v, o in zip(model.trainable_variables, old):
                v.assign(o)
            batches = list(ep.batches[m]) + ([ep.tail[m]] if ep.tail.shape[1] else [])
            for batch in batches:
                prev = [v.numpy() for v in model.trainable_variables]
                step(ep, m, batch)
            final = [v.numpy() for v in model.trainable_variables]
            results.append([f - p for f, p in zip(final, prev)] if foml else final)
        avg = [np.mean(x, axis=0) for x in zip(*results)]
        for v, o, a in zip(model.trainable_variables, old, avg):
            v.assign(o + eps * a if foml else o + eps * (a - o))
    return run


def _pair(optimizer="adam", foml=False, lr=1e-3, weight_decay=1.0, seed=0):
    model = models.build_omniglot_model(N, seed=seed)
    ref = keras.models.clone_model(model)
    ref.set_weights(model.get_weights())
    if optimizer == "adam":
        ours = Adam(lr)
        theirs = keras.optimizers.Adam(learning_rate=lr, beta_1=0.0, epsilon=1e-8)
    else:
        ours, theirs = SGD(lr), keras.optimizers.SGD(lr)
    alg = (FOML if foml else Reptile)(model, ours, weight_decay=weight_decay)
    return alg, ref, theirs


def _assert_weights_close(model, ref, atol):
    for a, b in zip(model.trainable_variables, ref.trainable_variables):
        if a.path.startswith("conv2d") and a.path.endswith("bias"):
            continue  # biases before batch norm have no effect and drift freely
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=atol, err_msg=a.path)


@pytest.mark.parametrize("optimizer,foml,eps", [
    ("sgd", False, 0.7), ("sgd", True, 0.7), ("adam", False, 0.7), ("adam", True, 0.7)])
def test_meta_steps_match_the_reference(optimizer, foml, eps):
    alg, ref, ref_opt = _pair(optimizer, foml, lr=1e-3)
    run_ref = _reference_meta_step(ref, ref_opt, eps, foml)
    for seed in range(2):  # two meta-iterations: optimizer state carries over
        ep = _train_episodes(seed=seed)
        alg.meta_step(ep, eps)
        run_ref(ep)
    _assert_weights_close(alg.model, ref, atol=2e-5 if optimizer == "sgd" else 2e-4)
    if optimizer == "adam":  # the shared second moments agree too
        assert float(alg.optimizer.step) == 2 * 2 * ITERS == int(ref_opt.iterations)
        for ours, theirs in zip(alg.optimizer.v, ref_opt._velocities):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-3, atol=1e-9)


def test_meta_step_one_gives_the_mean_of_the_adapted_weights():
    alg, ref, ref_opt = _pair("sgd", lr=1e-2)
    ep = _train_episodes(meta_batch=3)
    adapted = []
    for m in range(3):  # SGD has no state, so each task can be replayed alone
        single = TrainEpisode(*(t[m:m + 1] for t in ep))
        _reference_meta_step(ref, ref_opt, 1.0, False)(single)
        adapted.append([v.numpy() for v in ref.trainable_variables])
        ref.set_weights(alg.model.get_weights())
    alg.meta_step(ep, 1.0)
    for var, *per_task in zip(alg.model.trainable_variables, *adapted):
        np.testing.assert_allclose(var.numpy(), np.mean(per_task, axis=0), atol=2e-5)


def test_meta_step_zero_changes_no_weight_but_advances_adam():
    alg, _, _ = _pair("adam")
    before = [v.numpy() for v in alg.model.trainable_variables]
    alg.meta_step(_train_episodes(), 0.0)
    for b, v in zip(before, alg.model.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())
    assert float(alg.optimizer.step) == 2 * ITERS
    assert all(np.any(v.numpy() > 0) for v in alg.optimizer.v)


def test_foml_update_is_the_last_inner_step():
    """With one task and epsilon 1, FOML moves the meta-weights by exactly the
    change of the final inner step (SGD: -lr * gradient at the adapted point)."""
    alg, ref, ref_opt = _pair("sgd", foml=True, lr=1e-2)
    ep = _train_episodes(meta_batch=1)
    old = [v.numpy() for v in alg.model.trainable_variables]
    # Replay all but the last step on the reference, then take the last one.
    first = TrainEpisode(ep.images, ep.labels, ep.batches[:, :-1], ep.tail)
    _reference_meta_step(ref, ref_opt, 1.0, False)(first)
    before_last = [v.numpy() for v in ref.trainable_variables]
    last = TrainEpisode(ep.images, ep.labels, ep.batches[:, -1:], ep.tail)
    _reference_meta_step(ref, ref_opt, 1.0, False)(last)
    delta = [v.numpy() - b for v, b in zip(ref.trainable_variables, before_last)]
    alg.meta_step(ep, 1.0)
    for var, o, d in zip(alg.model.trainable_variables, old, delta):
        np.testing.assert_allclose(var.numpy() - o, d, atol=2e-6)


def test_foml_tail_is_the_final_batch():
    alg, ref, ref_opt = _pair("sgd", foml=True, lr=1e-2)
    ep = _train_episodes(meta_batch=1, tail_shots=1)
    assert ep.batches.shape[1] == ITERS - 1 and ep.tail.shape[1] == N
    alg.meta_step(ep, 1.0)
    _reference_meta_step(ref, ref_opt, 1.0, True)(ep)
    _assert_weights_close(alg.model, ref, atol=2e-6)


def test_weight_decay_shrinks_before_every_step():
    """SGD with a negligible rate: each inner step only multiplies by the decay."""
    alg, _, _ = _pair("sgd", lr=1e-12, weight_decay=0.5)
    old = [v.numpy() for v in alg.model.trainable_variables]
    alg.meta_step(_train_episodes(meta_batch=1), 1.0)
    for o, v in zip(old, alg.model.trainable_variables):
        np.testing.assert_allclose(v.numpy(), o * 0.5 ** ITERS, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="weight_decay 0"):
        _pair(weight_decay=0.0)


@pytest.mark.slow
def test_evaluation_restores_everything_and_uses_the_trained_adam_state():
    alg, _, _ = _pair("adam")
    alg.meta_step(_train_episodes(), 0.5)
    state = [v.numpy() for v in alg.model.variables + alg.optimizer.state_variables]
    episode = _eval_episode()
    logits = alg.adapt_and_predict(episode)
    after = [v.numpy() for v in alg.model.variables + alg.optimizer.state_variables]
    for a, b in zip(state, after):
        np.testing.assert_array_equal(a, b)
    # The adaptation continued from the trained second moments: a fresh
    # optimizer adapts differently.
    adapted = [v.numpy() for v in alg.adapt(episode).trainable_variables]
    fresh = Reptile(alg.model, Adam(1e-3))
    fresh_adapted = [v.numpy() for v in fresh.adapt(episode).trainable_variables]
    assert not np.allclose(adapted[0], fresh_adapted[0], atol=1e-7)
    assert logits.shape == (1, N, N) and logits.dtype == tf.float32


@pytest.mark.parametrize("transductive", [False, True])
def test_predictions_use_the_original_batches(transductive):
    alg, _, _ = _pair("adam")
    alg = type(alg)(alg.model, alg.optimizer, transductive=transductive)
    episode = _eval_episode()
    learner = alg.adapt(episode)
    if transductive:
        expected = np.argmax(learner(episode.query_images, training=True).numpy(), -1)
    else:  # each query last in a batch with the whole support set
        expected = [np.argmax(learner(tf.concat([episode.support_images,
                                                 episode.query_images[q:q + 1]], 0),
                                      training=True).numpy()[-1]) for q in range(N)]
    np.testing.assert_array_equal(np.argmax(alg.adapt_and_predict(episode).numpy()[-1], -1),
                                  expected)


@pytest.mark.slow
def test_no_retracing_across_iterations():
    alg, _, _ = _pair("adam")
    for i in range(4):
        alg.meta_step(_train_episodes(seed=i), 1.0 - i / 4)
        alg.adapt_and_predict(_eval_episode(seed=i))
    assert alg.tracing_counts() == {"meta_step": 1, "predict": 1, "predict_many": 0}
