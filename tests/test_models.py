import keras
import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import models


def _count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def test_parameter_counts_match_the_original():
    assert _count(models.build_omniglot_model(5)) == 113221
    assert _count(models.build_omniglot_model(20)) == 117076
    assert _count(models.build_miniimagenet_model(5)) == 34661


def test_shapes_and_logits():
    m = models.build_omniglot_model(5)
    out = m(tf.random.uniform([7, 28, 28]), training=True)
    assert out.shape == (7, 5)
    # Logits, not probabilities.
    assert not np.allclose(tf.reduce_sum(out, -1).numpy(), 1.0)
    assert models.build_miniimagenet_model(3)(tf.random.uniform([2, 84, 84, 3]),
                                              training=True).shape == (2, 3)


def test_batch_statistics_make_outputs_depend_on_the_batch():
    m = models.build_omniglot_model(5)
    x = tf.random.uniform([4, 28, 28])
    alone = m(x[:2], training=True)
    together = m(x, training=True)[:2]
    assert not np.allclose(alone.numpy(), together.numpy(), atol=1e-4)


def test_seed_determines_initialisation():
    a = models.build_omniglot_model(5, seed=3).get_weights()
    b = models.build_omniglot_model(5, seed=3).get_weights()
    c = models.build_omniglot_model(5, seed=4).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    # Layers get different seeds from one run seed: conv 2 and 3 have equal shapes.
    kernels = [v.numpy() for v in models.build_omniglot_model(5, seed=3).trainable_variables
               if v.path.endswith("kernel") and v.shape == (3, 3, 64, 64)]
    assert len(kernels) == 3 and not np.array_equal(kernels[0], kernels[1])


def test_bad_num_classes():
    with pytest.raises(ValueError, match="got 0"):
        models.build_omniglot_model(0)


def test_fused_batch_norm_equals_keras_batch_norm_with_derivatives():
    x = tf.random.normal([6, 5, 5, 4], seed=1) * 3 + 1
    ours, theirs = models.BatchNorm(epsilon=1e-3), keras.layers.BatchNormalization(epsilon=1e-3)
    ours.build(x.shape)
    theirs.build(x.shape)
    gamma = tf.random.normal([4], seed=2)
    for layer in (ours, theirs):
        layer.gamma.assign(gamma)
        layer.beta.assign(tf.range(4, dtype=tf.float32) / 10)

    def grads(layer):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(tf.sin(y))
            g = inner.gradient(loss, [x, layer.gamma])
            gg = tf.reduce_sum(g[0] ** 2) + tf.reduce_sum(g[1] ** 2)
        return y, g, outer.gradient(gg, x)

    (y1, g1, h1), (y2, g2, h2) = grads(ours), grads(theirs)
    np.testing.assert_allclose(y1.numpy(), y2.numpy(), atol=1e-5)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
    np.testing.assert_allclose(h1.numpy(), h2.numpy(), rtol=1e-3, atol=1e-3)
    # Moving statistics stay at their initial values, as in the original.
    np.testing.assert_array_equal(ours.moving_mean.numpy(), np.zeros(4))


def _original_order(model: keras.Model) -> keras.Model:
    """The Mini-ImageNet network in the original's layer order (pool, then
    ReLU) sharing `model`'s layers with weights."""
    inputs = keras.Input(models.MINIIMAGENET_SHAPE)
    x = inputs
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for conv, norm in zip(convs, norms):
        x = keras.layers.MaxPooling2D(2, 2, padding="same")(norm(conv(x)))
        x = keras.layers.ReLU()(x)
    return keras.Model(inputs, model.layers[-1](keras.layers.Flatten()(x)))


def test_miniimagenet_relu_before_pooling_gives_the_originals_values_and_gradients():
    model = models.build_miniimagenet_model(5, seed=3)
    kinds = [type(l).__name__ for l in model.layers]
    assert kinds.index("ReLU") < kinds.index("MaxPooling2D")  # the order this test is about
    original = _original_order(model)
    images = tf.random.uniform([10, 84, 84, 3], seed=4)
    labels = tf.constant(np.arange(10) % 5)

    def run(net):
        with tf.GradientTape() as tape:
            logits = net(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        return logits, tape.gradient(loss, model.trainable_variables)

    (ours, ours_grads), (theirs, their_grads) = run(model), run(original)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    for a, b in zip(ours_grads, their_grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
