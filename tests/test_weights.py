import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import weights


def _lists(seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32)]


def test_interpolate_endpoints_and_midpoint():
    old, new = _lists(0), _lists(1)
    for o, r in zip(old, weights.interpolate(old, new, 0.0)):
        np.testing.assert_array_equal(o, r)
    for n, r in zip(new, weights.interpolate(old, new, 1.0)):
        np.testing.assert_allclose(n, r, rtol=0, atol=1e-6)
    for o, n, r in zip(old, new, weights.interpolate(old, new, 0.25)):
        np.testing.assert_allclose(r, 0.75 * o + 0.25 * n, atol=1e-6)


def test_average_add_subtract_scale():
    a, b, c = _lists(0), _lists(1), _lists(2)
    for x, y, z, r in zip(a, b, c, weights.average([a, b, c])):
        np.testing.assert_allclose(r, (x + y + z) / 3, atol=1e-6)
    for x, y, r in zip(a, b, weights.subtract(a, b)):
        np.testing.assert_array_equal(r, x - y)
    for x, y, r in zip(a, b, weights.add(a, b)):
        np.testing.assert_array_equal(r, x + y)
    for x, r in zip(a, weights.scale(a, 3.0)):
        np.testing.assert_array_equal(r, 3.0 * x)


def test_inputs_are_not_modified():
    a, b = _lists(0), _lists(1)
    a_copy = [x.copy() for x in a]
    weights.interpolate(a, b, 0.5)
    weights.average([a, b])
    for x, y in zip(a, a_copy):
        np.testing.assert_array_equal(x, y)


def test_works_on_tensors():
    a = [tf.constant([1.0, 2.0])]
    b = [tf.constant([3.0, 6.0])]
    np.testing.assert_allclose(weights.interpolate(a, b, 0.5)[0].numpy(), [2.0, 4.0])


def test_errors():
    with pytest.raises(ValueError, match="different lengths: \\[1, 2\\]"):
        weights.add(_lists(0), _lists(1)[:1])
    with pytest.raises(ValueError, match="empty"):
        weights.average([])
