"""Tests of weights.py: weight-list arithmetic and per-task slot stacks, without a model."""

import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import weights


def _lists(seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32)]


def test_add_subtract_scale():
    a, b = _lists(0), _lists(1)
    for x, y, r in zip(a, b, weights.subtract(a, b)):
        np.testing.assert_array_equal(r, x - y)
    for x, y, r in zip(a, b, weights.add(a, b)):
        np.testing.assert_array_equal(r, x + y)
    for x, r in zip(a, weights.scale(a, 3.0)):
        np.testing.assert_array_equal(r, 3.0 * x)


def test_inputs_are_not_modified():
    a, b = _lists(0), _lists(1)
    a_copy, b_copy = [x.copy() for x in a], [x.copy() for x in b]
    weights.add(a, b)
    weights.subtract(a, b)
    weights.scale(a, 0.5)
    stack = tf.constant(np.stack([a[1], b[1]]))
    weights.put_slot(stack, 0, tf.zeros([4]))
    weights.mean_in_order(stack)
    for x, y in zip(a + b, a_copy + b_copy):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(stack.numpy(), np.stack([a[1], b[1]]))


def test_works_on_tensors():
    a = [tf.constant([1.0, 2.0])]
    b = [tf.constant([3.0, 6.0])]
    np.testing.assert_array_equal(weights.add(a, b)[0].numpy(), [4.0, 8.0])
    np.testing.assert_array_equal(weights.subtract(b, a)[0].numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(weights.scale(a, tf.constant(0.5))[0].numpy(), [0.5, 1.0])


def test_mean_in_order_sums_slot_by_slot_in_task_order():
    # In float32, 1e8 + 1 rounds to 1e8: the task order decides the result.
    stack = tf.constant([[1e8], [1.0], [-1e8], [1.0]], tf.float32)
    assert weights.mean_in_order(stack).numpy().tolist() == [0.25]  # ((1e8 + 1) - 1e8 + 1) / 4
    reordered = tf.constant([[1e8], [-1e8], [1.0], [1.0]], tf.float32)
    assert weights.mean_in_order(reordered).numpy().tolist() == [0.5]
    # The same bits as summing the slots one by one in NumPy.
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 3, 2)).astype(np.float32)
    total = np.zeros((3, 2), np.float32)
    for m in range(5):
        total = total + values[m]
    got = weights.mean_in_order(tf.constant(values)).numpy()
    assert got.shape == (3, 2) and got.dtype == np.float32
    np.testing.assert_array_equal(got, total / np.float32(5))


def test_mean_in_order_equals_reduce_mean_up_to_rounding():
    values = np.random.default_rng(1).normal(size=(7, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(weights.mean_in_order(tf.constant(values)).numpy(),
                               tf.reduce_mean(values, axis=0).numpy(), rtol=1e-5, atol=1e-7)


def test_put_slot_replaces_one_slot_only():
    stack = tf.constant(np.arange(12, dtype=np.float32).reshape(3, 2, 2))
    out = weights.put_slot(stack, 1, tf.fill([2, 2], -1.0))
    expected = stack.numpy().copy()
    expected[1] = -1.0
    np.testing.assert_array_equal(out.numpy(), expected)
    # A tensor index, as inside a graph loop.
    out = weights.put_slot(stack, tf.constant(2), tf.zeros([2, 2]))
    np.testing.assert_array_equal(out.numpy()[2], 0.0)
    np.testing.assert_array_equal(out.numpy()[:2], stack.numpy()[:2])


def test_empty_slots_adds_a_zero_slot_axis_to_every_tensor():
    nest = (tf.constant(3.0), [tf.ones([2, 2]), tf.ones([4], tf.int32)])
    slots = weights.empty_slots(nest, 5)
    assert slots[0].shape == (5,) and slots[1][0].shape == (5, 2, 2)
    assert slots[1][1].shape == (5, 4) and slots[1][1].dtype == tf.int32
    for s in tf.nest.flatten(slots):
        assert not np.any(s.numpy())


def test_broadcast_keeps_scalars_and_merge_slots_inverts_it():
    state = (tf.constant(3.0), [tf.ones([2, 2])], [tf.range(4, dtype=tf.float32)])
    many = weights.broadcast(state, 5)
    assert many[0].shape == () and many[1][0].shape == (5, 2, 2) and many[2][0].shape == (5, 4)
    for m in range(5):
        np.testing.assert_array_equal(many[2][0][m].numpy(), [0, 1, 2, 3])
    back = weights.merge_slots(many)
    for a, b in zip(tf.nest.flatten(back), tf.nest.flatten(state)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert tf.nest.flatten(weights.broadcast((), 3)) == []  # SGD's empty state


def test_merge_slots_is_the_mean_in_task_order_with_scalars_kept():
    values = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    step = tf.constant(7.0)
    merged = weights.merge_slots((step, [tf.constant(values)]))
    assert merged[0] is step
    np.testing.assert_array_equal(merged[1][0].numpy(),
                                  weights.mean_in_order(tf.constant(values)).numpy())


def test_errors():
    with pytest.raises(ValueError, match="different lengths: \\[1, 2\\]"):
        weights.add(_lists(0), _lists(1)[:1])
    with pytest.raises(ValueError, match="different lengths"):
        weights.subtract(_lists(0)[:1], _lists(1))
