import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile.optimizers import SGD, Adam, make_optimizer


def _vars(seed):
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.normal(size=(3, 4)).astype(np.float32)),
            tf.Variable(rng.normal(size=(5,)).astype(np.float32))]


@pytest.mark.parametrize("beta_1", [0.0, 0.9])
def test_adam_matches_keras_adam_with_original_hyperparameters(beta_1):
    """TF1 AdamOptimizer(epsilon=1e-8) and Keras 3 Adam share one formula; the
    original's beta1=0 takes a shortcut for the first moment."""
    ours, theirs = _vars(0), _vars(0)
    opt = Adam(0.01, beta_1=beta_1)
    opt.build(ours)
    ref = keras.optimizers.Adam(learning_rate=0.01, beta_1=beta_1, beta_2=0.999, epsilon=1e-8)
    rng = np.random.default_rng(1)
    weights, state = [v.read_value() for v in ours], opt.read_state()
    for _ in range(7):
        grads = [tf.constant(rng.normal(size=v.shape).astype(np.float32) * 0.1) for v in ours]
        weights, state = opt.apply(weights, grads, state)
        ref.apply_gradients(zip(grads, theirs))
    for w, t in zip(weights, theirs):
        np.testing.assert_allclose(w.numpy(), t.numpy(), rtol=1e-5, atol=1e-6)
    assert float(state[0]) == 7.0


def test_adam_beta1_zero_shortcut_is_the_formula_bit_for_bit():
    """With beta1=0 the first moment is the gradient itself: the weights,
    moments and step equal the general formula's to the last bit."""
    rng = np.random.default_rng(2)
    opt = Adam(0.003)
    variables = _vars(3)
    opt.build(variables)
    weights, state = [v.read_value() for v in variables], opt.read_state()
    ref_w, ref_m, ref_v = list(weights), list(state[1]), list(state[2])
    for t in range(1, 6):
        grads = [tf.constant(rng.normal(size=v.shape).astype(np.float32)) for v in variables]
        weights, state = opt.apply(weights, grads, state)
        lr_t = 0.003 * tf.sqrt(1.0 - tf.pow(0.999, float(t))) / (1.0 - tf.pow(0.0, float(t)))
        ref_m = [0.0 * m + 1.0 * g for m, g in zip(ref_m, grads)]
        ref_v = [0.999 * v + (1.0 - 0.999) * tf.square(g) for v, g in zip(ref_v, grads)]
        ref_w = [w - lr_t * m / (tf.sqrt(v) + 1e-8) for w, m, v in zip(ref_w, ref_m, ref_v)]
        for ours, ref in zip(weights + state[1] + state[2], ref_w + ref_m + ref_v):
            np.testing.assert_array_equal(ours.numpy(), ref.numpy())


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
