"""The MAML paper's sinusoid baselines, as meta-learners.

`Pretrained` trains one network on the mixture of tasks by plain gradient
descent (Adam on each meta-batch's mean loss over all of a task's points),
then, at evaluation, fine-tunes it on each task's K points with MAML's inner
SGD. Only `task_update` differs from MAML: the task's plain gradient at the
meta-weights, with no inner step before it.

`Oracle` is trained the same way on tasks whose inputs also carry the task's
amplitude and phase (`sinusoid`, `oracle=True`). Told the task, it needs no
adaptation, and its evaluation keeps its weights (the MAML paper draws it
as a flat line over the gradient steps); fine-tuning it with MAML's step size
diverges.
"""

import tensorflow as tf

from supervised_reptile.algorithms.maml import MAML
from supervised_reptile.optimizers import Frozen, InnerOptimizer


class Pretrained(MAML):
    """Joint training on the task mixture; evaluation as MAML's (see `MAML` for the arguments)."""

    loss_names = ("inner_loss",)

    def task_update(self, forward, weights, frozen, state, images, labels, batches, tail):
        """The gradient of the loss on all of the task's points.

        Returns:
          `(grads, state, {"inner_loss": that loss})`.
        """
        del batches, tail
        with tf.GradientTape() as tape:
            tape.watch(weights)
            total, loss = forward.losses(self.inner.loss_fn, labels,
                                         forward.logits(weights, frozen, images))
        grads = tape.gradient(total, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return grads, state, {"inner_loss": loss}


class Oracle(Pretrained):
    """The oracle baseline: `Pretrained` whose inner loop keeps the weights."""

    def inner_optimizer(self, inner_lr: float) -> InnerOptimizer:
        del inner_lr
        return Frozen()
