"""Inner-loop optimizers with explicit, checkpointable state.

The original uses one TF1 optimizer for every inner loop of the run: Adam's
second moments and step count flow from task to task and are saved in
checkpoints (docs/semantics.md#shared-inner-adam). Here an optimizer owns its state
as `tf.Variable`s (so `tf.train.Checkpoint` saves it) while the update itself is
a pure function of tensors, so a whole inner loop can run inside one
`tf.function` with the state carried as loop variables.

State layout (a tuple, so it can be a `tf.while_loop` loop variable):
  Adam: `(step, m, v)`; `step` is a float32 scalar (TF1's beta powers are
    `beta ** step`), `m` and `v` are lists shaped like the weights.
  SGD: `()`.
"""

from typing import Sequence

import tensorflow as tf


class InnerOptimizer(tf.Module):
    """Base class: state variables plus a pure `apply`."""

    def __init__(self, learning_rate: float, name: str):
        super().__init__(name=name)
        if not learning_rate > 0:
            raise ValueError(f"learning rate must be > 0, got {learning_rate}")
        self.learning_rate = float(learning_rate)
        self._built = False

    def build(self, trainable_variables: Sequence[tf.Variable]) -> None:
        """Creates the state variables for weights shaped like these."""
        if self._built:
            return
        with self.name_scope:
            self._create_state([v.shape for v in trainable_variables])
        self._built = True

    def _create_state(self, shapes) -> None:
        pass

    @property
    def state_variables(self) -> list[tf.Variable]:
        """Every variable holding optimizer state, in a fixed order."""
        return []

    def read_state(self) -> tuple:
        """The current state as tensors (see the module docstring)."""
        return ()

    def assign_state(self, state: tuple) -> None:
        """Writes a state tuple (as returned by `apply`) into the variables."""
        del state

    def apply(self, weights: list, grads: list, state: tuple) -> tuple[list, tuple]:
        """One update step.

        Args:
          weights: list of float tensors, the current weights.
          grads: list of tensors shaped like `weights`.
          state: the optimizer state tuple.

        Returns:
          `(new_weights, new_state)`.
        """
        raise NotImplementedError


class SGD(InnerOptimizer):
    """Plain gradient descent, `w <- w - lr * g` (the original's SGD option)."""

    def __init__(self, learning_rate: float):
        super().__init__(learning_rate, name="sgd")

    def apply(self, weights, grads, state):
        return [w - self.learning_rate * g for w, g in zip(weights, grads)], state


class Frozen(InnerOptimizer):
    """Leaves the weights as they are: the inner loop of a learner that needs
    no adaptation (the oracle baseline, which is told the task)."""

    def __init__(self):
        super().__init__(1.0, name="frozen")

    def apply(self, weights, grads, state):
        del grads
        return list(weights), state


class Adam(InnerOptimizer):
    """Adam as TF1's `AdamOptimizer` computes it.

    `lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)`,
    `w <- w - lr_t * m / (sqrt(v) + epsilon)`: epsilon is added outside the
    square root and not bias-corrected (Keras 3's Adam has the same formula,
    but defaults to epsilon 1e-7). The original uses `beta_1=0` and
    `epsilon=1e-8`.
    """

    def __init__(self, learning_rate: float, beta_1: float = 0.0,
                 beta_2: float = 0.999, epsilon: float = 1e-8):
        super().__init__(learning_rate, name="adam")
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)

    def _create_state(self, shapes):
        self.step = tf.Variable(0.0, trainable=False, name="step")
        self.m = [tf.Variable(tf.zeros(s), trainable=False, name=f"m_{i}")
                  for i, s in enumerate(shapes)]
        self.v = [tf.Variable(tf.zeros(s), trainable=False, name=f"v_{i}")
                  for i, s in enumerate(shapes)]

    @property
    def state_variables(self):
        return [self.step] + self.m + self.v

    def read_state(self):
        return (tf.identity(self.step), [tf.identity(x) for x in self.m],
                [tf.identity(x) for x in self.v])

    def assign_state(self, state):
        step, m, v = state
        self.step.assign(step)
        for var, value in zip(self.m + self.v, list(m) + list(v)):
            var.assign(value)

    def apply(self, weights, grads, state):
        step, m, v = state
        step = step + 1.0
        lr_t = (self.learning_rate * tf.sqrt(1.0 - tf.pow(self.beta_2, step))
                / (1.0 - tf.pow(self.beta_1, step)))
        if self.beta_1 == 0.0:
            # The original's beta_1: `0 * m + 1 * g` is `g` bit for bit (for
            # finite m), and skipping its 3 ops per tensor saves about 15% of
            # the update's time, which runs at every inner step.
            new_m = list(grads)
        else:
            new_m = [self.beta_1 * mi + (1.0 - self.beta_1) * g for mi, g in zip(m, grads)]
        new_v = [self.beta_2 * vi + (1.0 - self.beta_2) * tf.square(g)
                 for vi, g in zip(v, grads)]
        new_w = [w - lr_t * mi / (tf.sqrt(vi) + self.epsilon)
                 for w, mi, vi in zip(weights, new_m, new_v)]
        return new_w, (step, new_m, new_v)


def make_optimizer(name: str, learning_rate: float) -> InnerOptimizer:
    """Builds the inner optimizer by name: `"adam"` (the original's default,
    beta_1=0, epsilon=1e-8) or `"sgd"`."""
    if name == "adam":
        return Adam(learning_rate)
    if name == "sgd":
        return SGD(learning_rate)
    raise ValueError(f"unknown inner optimizer {name!r}; valid: 'adam', 'sgd'")
