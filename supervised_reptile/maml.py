"""MAML (Finn, Abbeel, Levine 2017): exact second order, or first order.

Per task: plain SGD steps `w <- w - alpha * grad L_support(w)` on the support
set, starting from the meta-weights, run on weight *tensors* through a clone
of the meta-model (`stateless_call`), so the adapted weights stay a
differentiable function of the meta-weights. The meta-gradient is the
gradient of the query loss at the adapted weights with respect to the
meta-weights, taken by an outer `tf.GradientTape` that also records the inner
tapes' gradient computations (second-order terms). `first_order=True` wraps
every inner gradient in `tf.stop_gradient`, which leaves the meta-gradient
`grad L_query(adapted)` (FOMAML). The outer update is Adam (TF1's
`AdamOptimizer` defaults, as the reference code: beta_1 0.9, beta_2 0.999,
epsilon 1e-8) on the query loss averaged over the meta-batch.

Episodes are the port's (see `episodes.py`): in a `TrainEpisode` the tail
(`TaskSpec.tail_shots` = query shots) is the query set and each row of
`batches` is one inner step's support batch (the whole support set with
`batch_size = N * K`); in an `EvalEpisode` the queries are the held-out ones.

State: the meta-weights and the outer Adam state (`self.optimizer`, a
checkpointable `tf.Module`) change only in `meta_step`; evaluation changes
nothing. There is no inner-optimizer state. Batch norm uses batch statistics
everywhere, as the port's models do.
"""

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from supervised_reptile.algorithms import mean_in_order, put_slot
from supervised_reptile.episodes import EvalEpisode, TrainEpisode
from supervised_reptile.optimizers import Adam

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def maml_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The reference code's classification loss: N x the mean cross-entropy.

    cbfinn/maml sums the per-example softmax cross-entropy and divides by K
    (`utils.xent` / `update_batch_size`), which for a batch of N * K examples
    is N x the mean; the paper's step sizes (0.4 on Omniglot) assume this scale.

    Args:
      labels: int32 `[batch]`.
      logits: float `[batch, N]`.
    """
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
    return tf.reduce_mean(per_example) * logits.shape[-1]


class MAML:
    """MAML with the `Reptile` interface (`meta_step`, `adapt_and_predict`, `adapt`).

    Args:
      model: the meta-model; its trainable variables are the meta-weights.
      inner_lr: alpha, the inner SGD step size (`--maml-inner-lr`).
      meta_lr: the outer Adam learning rate (`--meta-lr`).
      first_order: drop the second-order terms (`--maml-first-order`).
      transductive: predict an evaluation task's queries in one batch (True)
        or each query together with the whole support set (False).
      loss_fn: `(labels, outputs) -> scalar` for support and query sets.
    """

    def __init__(self, model: keras.Model, inner_lr: float, meta_lr: float = 1e-3,
                 first_order: bool = False, transductive: bool = False,
                 loss_fn: LossFn = maml_cross_entropy):
        if not inner_lr > 0:
            raise ValueError(f"--maml-inner-lr {inner_lr} must be > 0")
        self.model = model
        self.learner = keras.models.clone_model(model)
        self.optimizer = Adam(meta_lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        self.optimizer.build(model.trainable_variables)
        self.inner_lr = float(inner_lr)
        self.first_order = bool(first_order)
        self._transductive = bool(transductive)
        self.loss_fn = loss_fn
        self.num_traces = 0
        self._meta_step_fn = tf.function(self._meta_step, reduce_retracing=True)
        self._eval_fn = tf.function(self._adapt_and_predict_steps, reduce_retracing=True)
        self._adapt_fn = tf.function(self._adapt_weights, reduce_retracing=True)

    @property
    def transductive(self) -> bool:
        """Fixed at construction: it is compiled into the evaluation function."""
        return self._transductive

    # -- the inner loop --------------------------------------------------

    def _outputs(self, weights, frozen, inputs):
        return self.learner.stateless_call(weights, frozen, inputs, training=True)[0]

    def read_model(self):
        """The meta-weights and the non-trainable weights, as tensors."""
        return ([tf.identity(v) for v in self.model.trainable_variables],
                [tf.identity(v) for v in self.model.non_trainable_variables])

    def _inner_loop(self, weights, frozen, inputs, labels, batches):
        """SGD steps, one per row of `batches` (`[steps, batch]` indices, a static shape).

        Differentiable with respect to `weights` when an outer tape records.

        Returns:
          `(weights after each step, steps + 1 lists, the first one the input;
          support loss before the first step)`.
        """
        history, first_loss = [weights], None
        for step in range(batches.shape[0]):  # few steps: unrolled, static
            x, y = tf.gather(inputs, batches[step]), tf.gather(labels, batches[step])
            with tf.GradientTape() as tape:
                tape.watch(weights)
                loss = self.loss_fn(y, self._outputs(weights, frozen, x))
            grads = tape.gradient(loss, weights,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            if self.first_order:
                grads = [tf.stop_gradient(g) for g in grads]
            weights = [w - self.inner_lr * g for w, g in zip(weights, grads)]
            history.append(weights)
            first_loss = loss if first_loss is None else first_loss
        if first_loss is None:  # no inner step
            first_loss = tf.zeros([], weights[0].dtype)
        return history, first_loss

    def _task_gradients(self, meta, frozen, inputs, labels, batches, query):
        """Meta-gradient of one task's query loss: `(grads, support_loss, query_loss)`."""
        with tf.GradientTape() as tape:
            tape.watch(meta)
            history, support_loss = self._inner_loop(meta, frozen, inputs, labels, batches)
            query_loss = self.loss_fn(tf.gather(labels, query),
                                      self._outputs(history[-1], frozen,
                                                    tf.gather(inputs, query)))
        grads = tape.gradient(query_loss, meta,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return grads, support_loss, query_loss

    # -- meta-training ---------------------------------------------------

    def task_updates(self, old, frozen, state, episodes: TrainEpisode, first=0, stride=1):
        """Meta-gradients of tasks `first, first + stride, ...` of a meta-batch.

        The same contract as `Reptile.task_updates` (so `distribute` runs
        both): each task's result lands in its own slot.

        Args:
          old: the meta-weights as tensors; frozen: the non-trainable ones.
          state: unused (MAML's inner SGD has no state); returned as `()`.
          episodes: a `TrainEpisode` with a leading `[meta_batch]` axis; each
            task's `tail` (non-empty) indexes its query set.

        Returns:
          `(grads, losses, ())`: `grads` a list of `[meta_batch, *w.shape]`
          stacks (zeros for tasks not run here); `losses` a dict of float
          `[meta_batch]` stacks, `inner_loss` (support loss before
          adaptation) and `query_loss` (after it).
        """
        del state
        if episodes.tail.shape[-1] == 0:
            raise ValueError("MAML needs a query set: build training tasks with "
                             "TaskSpec.tail_shots (the query shots per class)")
        num_tasks = episodes.images.shape[0]

        def body(m, grads, inner, query):
            g, s, q = self._task_gradients(old, frozen, episodes.images[m], episodes.labels[m],
                                           episodes.batches[m], episodes.tail[m])
            grads = [put_slot(t, m, x) for t, x in zip(grads, g)]
            return m + stride, grads, put_slot(inner, m, s), put_slot(query, m, q)

        zeros = tf.zeros([num_tasks], old[0].dtype)
        _, grads, inner, query = tf.while_loop(
            lambda m, *_: m < num_tasks, body,
            (tf.convert_to_tensor(first, tf.int32), [tf.zeros([num_tasks] + w.shape, w.dtype)
                                                     for w in old], zeros, zeros))
        return grads, {"inner_loss": inner, "query_loss": query}, ()

    def meta_gradients(self, episodes: TrainEpisode) -> tuple[list, dict]:
        """The meta-gradient averaged over a meta-batch (no state changes).

        Args:
          episodes: see `task_updates`.

        Returns:
          `(grads, {"inner_loss", "query_loss"})`: grads shaped like the
          meta-weights; the mean support loss before adaptation and the mean
          query loss after it.
        """
        meta, frozen = self.read_model()
        grads, losses, _ = self.task_updates(meta, frozen, (), episodes)
        return mean_in_order(grads), {k: mean_in_order([v])[0] for k, v in losses.items()}

    def apply_meta_update(self, old, grads, losses, meta_step_size) -> dict:
        """One outer Adam step with the tasks' mean meta-gradient (summed in
        task order from `task_updates`' slots); `meta_step_size` is ignored.

        Returns:
          The mean of each of `losses` over the tasks.
        """
        del meta_step_size
        new, state = self.optimizer.apply(old, mean_in_order(grads), self.optimizer.read_state())
        for var, value in zip(self.model.trainable_variables, new):
            var.assign(value)
        self.optimizer.assign_state(state)
        return {k: mean_in_order([v])[0] for k, v in losses.items()}

    def _meta_step(self, episodes: TrainEpisode):
        self.num_traces += 1
        old, frozen = self.read_model()
        grads, losses, _ = self.task_updates(old, frozen, (), episodes)
        return self.apply_meta_update(old, grads, losses, None)

    def meta_step(self, episodes: TrainEpisode, meta_step_size: float = 1.0) -> dict:
        """One outer Adam step on the meta-batch's mean query loss.

        Args:
          episodes: see `meta_gradients`.
          meta_step_size: accepted for the shared interface and ignored: MAML's
            outer step is Adam with the fixed `meta_lr` (as in the paper), so
            `--meta-step`/`--meta-step-final` have no effect with `--maml`.

        Returns:
          `{"inner_loss", "query_loss"}` as scalar tensors.
        """
        del meta_step_size
        return self._meta_step_fn(episodes)

    # -- evaluation ------------------------------------------------------

    def _predict(self, weights, frozen, support_images, query_images):
        def logits(images):
            return self._outputs(weights, frozen, images)

        if self.transductive:
            return tf.argmax(logits(query_images), axis=-1, output_type=tf.int32)
        preds = [tf.argmax(logits(tf.concat([support_images, query_images[q:q + 1]], 0))[-1],
                           output_type=tf.int32)
                 for q in range(query_images.shape[0])]
        return tf.stack(preds)

    def _adapt_and_predict_steps(self, episode: EvalEpisode):
        self.num_traces += 1
        meta, frozen = self.read_model()
        history, _ = self._inner_loop(meta, frozen, episode.support_images,
                                      episode.support_labels, episode.batches)
        return tf.stack([self._predict(w, frozen, episode.support_images, episode.query_images)
                         for w in history])

    def _adapt_weights(self, episode: EvalEpisode):
        self.num_traces += 1
        meta, frozen = self.read_model()
        history, _ = self._inner_loop(meta, frozen, episode.support_images,
                                      episode.support_labels, episode.batches)
        return history[-1]

    def predict_per_step(self, episode: EvalEpisode) -> tf.Tensor:
        """MAML's protocol: predictions before adaptation and after every inner step.

        Returns:
          int32 `[eval_iters + 1, N]`; row s holds the predicted labels of
          `episode.query_images` after s steps.
        """
        return self._eval_fn(episode)

    def adapt_and_predict(self, episode: EvalEpisode) -> tf.Tensor:
        """Adapts on the support set and predicts the queries, changing no state.

        Returns:
          int32 `[N]` predicted labels of `episode.query_images`.
        """
        return self.predict_per_step(episode)[-1]

    def adapt(self, episode: EvalEpisode) -> keras.Model:
        """Adapts on the support set; returns the task learner holding the
        adapted weights (call it with `training=True`). The meta-model is unchanged."""
        for var, value in zip(self.learner.trainable_variables, self._adapt_fn(episode)):
            var.assign(value)
        return self.learner


def accuracy_per_step(algorithm: MAML, episodes, num_tasks: int) -> np.ndarray:
    """Per-task accuracy before adaptation and after each inner step.

    Returns:
      float64 `[num_tasks, eval_iters + 1]` fractions of correct queries;
      `evaluate.confidence_interval` of a column gives MAML's mean +- 95% CI.
    """
    rows = []
    for episode, _ in zip(episodes, range(num_tasks)):
        preds = algorithm.predict_per_step(episode).numpy()
        rows.append(np.mean(preds == episode.query_labels.numpy()[None, :], axis=1))
    if len(rows) != num_tasks:
        raise ValueError(f"only {len(rows)} episodes were available, {num_tasks} asked for")
    return np.array(rows, np.float64)
