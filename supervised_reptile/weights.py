"""Pure arithmetic on weight lists and on per-task slots of them.

A "weight list" is a list of tensors, one per trainable variable, in
`model.trainable_variables` order. A "slot stack" is a tensor with a leading
`[tasks]` axis whose slot `m` holds task `m`'s value. Every function here is
pure (inputs are never modified) and works on NumPy arrays and TF tensors
alike where it can, so the same code serves the compiled meta-updates and
their tests.
"""

from typing import Sequence, TypeVar

import tensorflow as tf

T = TypeVar("T")


def _check_lengths(*lists: Sequence) -> None:
    lengths = {len(values) for values in lists}
    if len(lengths) > 1:
        raise ValueError(f"weight lists have different lengths: {sorted(lengths)}")


def add(a: Sequence[T], b: Sequence[T]) -> list[T]:
    """Element-wise `a + b`."""
    _check_lengths(a, b)
    return [x + y for x, y in zip(a, b)]


def subtract(a: Sequence[T], b: Sequence[T]) -> list[T]:
    """Element-wise `a - b`."""
    _check_lengths(a, b)
    return [x - y for x, y in zip(a, b)]


def scale(a: Sequence[T], factor) -> list[T]:
    """Element-wise `factor * a`; `factor` is a Python or 0-d scalar."""
    return [x * factor for x in a]


def mean_in_order(stack):
    """Mean over the leading `[tasks]` axis, summed slot by slot in task order.

    The fixed order gives the same bits wherever the slots were filled (one
    device, or several replicas that each filled some slots), which
    `reduce_mean` does not promise.

    Args:
      stack: a `[tasks, ...]` tensor with a static task count.

    Returns:
      The mean, shaped like one slot.
    """
    total = tf.zeros_like(stack[0])
    for m in range(stack.shape[0]):
        total = total + stack[m]
    return total / stack.shape[0]


def put_slot(stack, m, value):
    """`stack` with slot `m` (of its leading axis) replaced by `value`."""
    return tf.tensor_scatter_nd_update(stack, [[m]], value[None])


def empty_slots(values, tasks: int):
    """Zeros with a `[tasks]` slot axis in front of every tensor of a nest."""
    return tf.nest.map_structure(lambda x: tf.zeros([tasks] + x.shape, x.dtype), values)


def broadcast(values, tasks: int):
    """Every tensor of a nest repeated along a new leading `[tasks]` axis.

    Scalars stay scalars: a scalar that every task shares (Adam's step count,
    which advances alike in every task of a batch) broadcasts against the
    stacked weights as it is.
    """
    return tf.nest.map_structure(
        lambda v: v if v.shape.rank == 0 else tf.broadcast_to(v, [tasks, *v.shape]), values)


def merge_slots(state):
    """The mean over tasks of every slot stack of a nest, in task order.

    A scalar leaf is already shared by all tasks (see `broadcast`) and is
    returned as it is.
    """
    return tf.nest.map_structure(lambda s: s if s.shape.rank == 0 else mean_in_order(s), state)
