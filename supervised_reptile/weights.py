"""Pure arithmetic on weight lists (the original's `variables.py`).

A "weight list" is a list of tensors or arrays with matching shapes, one per
trainable variable, in `model.trainable_variables` order. Every function here
is pure (inputs are never modified) and works on NumPy arrays and TF tensors
alike, so the same code serves in-graph meta-updates and tests.
"""

from typing import Sequence, TypeVar

T = TypeVar("T")


def _check_lengths(*lists: Sequence) -> None:
    lengths = {len(l) for l in lists}
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


def average(lists: Sequence[Sequence[T]]) -> list[T]:
    """Element-wise mean over a non-empty sequence of weight lists."""
    if not lists:
        raise ValueError("cannot average an empty sequence of weight lists")
    _check_lengths(*lists)
    total = list(lists[0])
    for other in lists[1:]:
        total = add(total, other)
    return scale(total, 1.0 / len(lists))


def interpolate(old: Sequence[T], new: Sequence[T], epsilon) -> list[T]:
    """`old + epsilon * (new - old)`: the Reptile outer step.

    Args:
      old: the meta-weights before the step.
      new: the target weights (e.g. the mean of the adapted weights).
      epsilon: the meta step size, usually in [0, 1]; 0 returns `old`
        unchanged and 1 returns `new`.
    """
    _check_lengths(old, new)
    return [o + (n - o) * epsilon for o, n in zip(old, new)]
