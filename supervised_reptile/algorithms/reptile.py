"""Reptile (Nichol et al. 2018) and the original's first-order MAML (FOML).

Every task of a meta-batch fine-tunes from the meta-weights with the inner
optimizer; Reptile moves the meta-weights `meta_step_size` of the way towards
the mean of the adapted weights, FOML by the mean of the tasks' last inner
steps. The inner optimizer's state is the original's shared one by default
(docs/semantics.md#shared-inner-adam; other rules: `schedules`).
"""

import keras
import tensorflow as tf

from supervised_reptile import weights as wmath
from supervised_reptile.algorithms.base import Algorithm
from supervised_reptile.algorithms.inner_loop import InnerLoop, LossFn
from supervised_reptile.optimizers import InnerOptimizer


def summed_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The original's loss: the sum (not the mean) of the examples'
    cross-entropies (docs/semantics.md#summed-loss).

    Args:
      labels: int32 `[batch]`; logits: float32 `[batch, N]`.
    """
    return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))


class Reptile(Algorithm):
    """Reptile: the meta-update is `meta_step_size * mean(adapted - old)`.

    Args:
      model: the meta-model.
      optimizer: the inner optimizer; its state is checkpointed.
      weight_decay: keep-fraction multiplied into every weight before every
        inner step (1: none).
      transductive: see `base.MetaLearner`.
      loss_fn: `(labels, outputs) -> scalar` inner loss of a batch.
      schedule: see `schedules`.
    """

    def __init__(self, model: keras.Model, optimizer: InnerOptimizer, weight_decay: float = 1.0,
                 transductive: bool = False, loss_fn: LossFn = summed_cross_entropy,
                 schedule="shared"):
        super().__init__(model, InnerLoop(optimizer, loss_fn, weight_decay), optimizer,
                         transductive, schedule)

    def direction(self, old, adapted, before_last) -> list:
        """The task's update: `adapted - old`."""
        del before_last
        return wmath.subtract(adapted, old)

    def task_update(self, forward, weights, frozen, state, images, labels, batches, tail):
        adapted, before_last, state, loss, _ = self.inner.run(
            forward, weights, frozen, state, images, labels, batches, tail)
        return self.direction(weights, adapted, before_last), state, {"inner_loss": loss}

    def outer_update(self, old, mean_update, meta_step_size):
        return wmath.add(old, wmath.scale(mean_update, meta_step_size))


class FOML(Reptile):
    """First-order MAML as the original computes it: the task's update is its
    last inner step's change, taken from before that step's weight decay, so
    it includes the decay (docs/semantics.md#foml)."""

    def direction(self, old, adapted, before_last) -> list:
        del old
        return wmath.subtract(adapted, before_last)
