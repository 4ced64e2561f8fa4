"""The MAML paper's sinusoid baselines, as meta-learners.

`Pretrained` trains one network on the mixture of tasks by plain gradient
descent (Adam on each meta-batch's mean loss over all of a task's points),
then, at evaluation, fine-tunes it on each task's K points with MAML's inner
SGD. The oracle baseline is the same learner on tasks whose inputs also carry
the task's amplitude and phase (`sinusoid`, `oracle=True`).

Only `task_update` differs from MAML: the task's plain gradient at the
meta-weights, with no inner step before it.
"""

import tensorflow as tf

from supervised_reptile.algorithms.maml import MAML


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
