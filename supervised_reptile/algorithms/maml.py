"""MAML (Finn, Abbeel, Levine 2017): exact second order, or first order.

Per task: plain SGD steps `w <- w - alpha * grad L_support(w)` from the
meta-weights, each on the whole support set, run on weight *tensors* and
unrolled, so the adapted weights stay a differentiable function of the
meta-weights. The task's contribution is the gradient of its query loss at
the adapted weights with respect to the meta-weights, taken by an outer
`tf.GradientTape` that also records the inner gradient computations (the
second-order terms). `first_order=True` cuts the inner gradients out of the
graph, which leaves `grad L_query(adapted)` (FOMAML). The outer update is Adam
(TF1's defaults, as the reference code: beta_1 0.9, beta_2 0.999, epsilon
1e-8) on the meta-batch's mean meta-gradient (docs/semantics.md#maml).

Episodes are the port's: a training task's `tail` is its query set and each
row of `batches` one inner step; evaluation runs the same SGD steps through
`InnerLoop.run`.

State: the meta-weights and the outer Adam state (`optimizer`) change only in
`meta_step`; the inner SGD has no state.
"""

import keras
import tensorflow as tf

from supervised_reptile import weights as wmath
from supervised_reptile.algorithms.base import Algorithm
from supervised_reptile.algorithms.inner_loop import InnerLoop, LossFn
from supervised_reptile.optimizers import SGD, Adam, InnerOptimizer


def maml_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The reference code's classification loss: N x the mean cross-entropy.

    cbfinn/maml sums the per-example softmax cross-entropy and divides by K,
    which for a batch of N * K examples is N x the mean; the paper's step
    sizes (0.4 on Omniglot) assume this scale.

    Args:
      labels: int32 `[batch]`; logits: float `[batch, N]`.
    """
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    return tf.reduce_mean(per_example) * logits.shape[-1]


class MAML(Algorithm):
    """MAML.

    Args:
      model: the meta-model.
      inner_lr: alpha, the inner SGD step size.
      meta_lr: the outer Adam learning rate.
      first_order: drop the second-order terms.
      transductive: see `base.MetaLearner`.
      loss_fn: `(labels, outputs) -> scalar` for support and query sets.
      schedule: see `schedules` (no inner state: they differ only in speed).
    """

    loss_names = ("inner_loss", "query_loss")

    def __init__(self, model: keras.Model, inner_lr: float, meta_lr: float = 1e-3,
                 first_order: bool = False, transductive: bool = False,
                 loss_fn: LossFn = maml_cross_entropy, schedule="shared"):
        if not inner_lr > 0:
            raise ValueError(f"inner_lr {inner_lr} must be > 0")
        if not meta_lr > 0:
            raise ValueError(f"meta_lr {meta_lr} must be > 0")
        self.first_order = bool(first_order)
        super().__init__(model, InnerLoop(self.inner_optimizer(inner_lr), loss_fn,
                                          stop_gradients=first_order),
                         Adam(meta_lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8), transductive,
                         schedule)

    def inner_optimizer(self, inner_lr: float) -> InnerOptimizer:
        """The inner loop's update rule: SGD with step size alpha."""
        return SGD(inner_lr)

    def task_update(self, forward, weights, frozen, state, images, labels, batches, tail):
        """The task's meta-gradient; `tail` indexes its query set.

        Returns:
          `(grads, state, {"inner_loss": support loss before adaptation,
          "query_loss": query loss after it})`.
        """
        if tail.shape[-1] == 0:
            raise ValueError("MAML needs a query set: build training tasks with "
                             "TaskSpec.tail_shots (the query shots per class)")
        with tf.GradientTape() as tape:
            tape.watch(weights)
            adapted, state, support_loss = self.inner.unrolled(forward, weights, frozen, state,
                                                               images, labels, batches)
            queries = forward.logits(adapted, frozen, forward.gather(images, tail))
            total, query_loss = forward.losses(self.inner.loss_fn, forward.gather(labels, tail),
                                               queries)
        grads = tape.gradient(total, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return grads, state, {"inner_loss": support_loss, "query_loss": query_loss}

    def outer_update(self, old, mean_update, meta_step_size):
        del meta_step_size  # Adam with the fixed meta_lr, as in the paper
        new, state = self.optimizer.apply(old, mean_update, self.optimizer.read_state())
        self.optimizer.assign_state(state)
        return new

    def meta_gradients(self, episodes) -> tuple[list, dict]:
        """The meta-batch's mean meta-gradient, changing no state.

        Returns:
          `(grads, {"inner_loss", "query_loss"})`: grads shaped like the
          meta-weights; the mean support loss before adaptation and query
          loss after it.
        """
        old, frozen = self.read_weights()
        grads, losses, _ = self.task_updates(old, frozen, self.inner_state(), episodes)
        return ([wmath.mean_in_order(g) for g in grads],
                {k: wmath.mean_in_order(v) for k, v in losses.items()})
