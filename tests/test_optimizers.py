import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile.optimizers import SGD, Adam, make_optimizer


def _vars(seed):
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.normal(size=(3, 4)).astype(np.float32)),
            tf.Variable(rng.normal(size=(5,)).astype(np.float32))]


def test_adam_matches_keras_adam_with_original_hyperparameters():
    """TF1 AdamOptimizer(beta1=0, epsilon=1e-8) and Keras 3 Adam share one formula."""
    ours, theirs = _vars(0), _vars(0)
    opt = Adam(0.01)
    opt.build(ours)
    ref = keras.optimizers.Adam(learning_rate=0.01, beta_1=0.0, beta_2=0.999, epsilon=1e-8)
    rng = np.random.default_rng(1)
    weights, state = [v.read_value() for v in ours], opt.read_state()
    for _ in range(7):
        grads = [tf.constant(rng.normal(size=v.shape).astype(np.float32) * 0.1) for v in ours]
        weights, state = opt.apply(weights, grads, state)
        ref.apply_gradients(zip(grads, theirs))
    for w, t in zip(weights, theirs):
        np.testing.assert_allclose(w.numpy(), t.numpy(), rtol=1e-5, atol=1e-6)
    assert float(state[0]) == 7.0


def test_adam_first_step_is_lr_times_sign_like():
    """With beta1=0, step 1 is lr * g / (|g| + eps): about lr * sign(g)."""
    opt = Adam(0.5)
    var = [tf.Variable([1.0, 1.0])]
    opt.build(var)
    new, _ = opt.apply([var[0].read_value()], [tf.constant([2.0, -3.0])], opt.read_state())
    np.testing.assert_allclose(new[0].numpy(), [0.5, 1.5], atol=1e-5)


def test_state_roundtrip_and_build_idempotent():
    opt = Adam(0.1)
    variables = _vars(0)
    opt.build(variables)
    opt.build(variables)
    assert len(opt.state_variables) == 1 + 2 * len(variables)
    _, state = opt.apply([v.read_value() for v in variables],
                         [tf.ones_like(v) for v in variables], opt.read_state())
    opt.assign_state(state)
    step, m, v = opt.read_state()
    assert float(step) == 1.0
    np.testing.assert_allclose(v[0].numpy(), 0.001 * np.ones((3, 4)), rtol=1e-5)


def test_sgd_and_factory():
    opt = make_optimizer("sgd", 0.1)
    assert isinstance(opt, SGD)
    new, state = opt.apply([tf.constant([1.0])], [tf.constant([2.0])], ())
    np.testing.assert_allclose(new[0].numpy(), [0.8])
    assert state == ()
    assert isinstance(make_optimizer("adam", 0.1), Adam)
    with pytest.raises(ValueError, match="'rmsprop'"):
        make_optimizer("rmsprop", 0.1)
    with pytest.raises(ValueError, match="got -1"):
        Adam(-1)
