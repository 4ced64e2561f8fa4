"""Reptile and first-order MAML: the inner loop and the meta-update.

State semantics (ORIGINAL.md 5.1, 10.1-10.2), kept deliberately:
  * Meta-training tasks run one after another from the same meta-weights;
    the inner optimizer's state (Adam's second moments and step count) flows
    from task to task and across meta-iterations, and is never reset.
  * Evaluation adapts from the meta-weights and the current optimizer state
    and leaves both untouched (the original snapshots and restores them).
  * Batch norm always uses batch statistics; the moving averages are never
    updated or used.

How: the meta-model's weights are read once per meta-iteration into tensors;
each task's inner loop runs on those tensors through the task learner (a
clone of the meta-model, built once, applied with `stateless_call`), all
inside one `tf.function`, and the meta-model is written back once by variable
assignment.
"""

import keras
import tensorflow as tf

from supervised_reptile import weights as wmath
from supervised_reptile.episodes import EvalEpisode, TrainEpisode
from supervised_reptile.optimizers import InnerOptimizer


def summed_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """The original's loss: the per-example loss vector, i.e. its sum."""
    return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))


class Reptile:
    """Reptile (Nichol et al. 2018): move the meta-weights towards the adapted weights.

    Args:
      model: the meta-model (its trainable variables are the meta-weights).
      optimizer: the inner optimizer; built here if it is not yet.
      weight_decay: multiplicative shrink applied to every weight before every
        inner step (the original's `--weight-decay`; 1 = none).
      transductive: predict the queries of an evaluation task in one batch
        (True) or each query together with the whole support set (False).
      loss_fn: `(labels, outputs) -> scalar` inner loss (issue 3: sinusoid
        regression passes a mean squared error).
    """

    def __init__(self, model: keras.Model, optimizer: InnerOptimizer,
                 weight_decay: float = 1.0, transductive: bool = False,
                 loss_fn=summed_cross_entropy):
        if not 0 < weight_decay <= 1:
            raise ValueError(f"--weight-decay {weight_decay} must be in (0, 1] (a keep-fraction "
                             "applied before every inner step; 1 disables it)")
        self.model = model
        self.learner = keras.models.clone_model(model)
        self.optimizer = optimizer
        optimizer.build(model.trainable_variables)
        self.weight_decay = float(weight_decay)
        self._transductive = bool(transductive)
        self.loss_fn = loss_fn
        self.num_traces = 0
        self._meta_step_fn = tf.function(self._meta_step, reduce_retracing=True)
        self._predict_fn = tf.function(self._adapt_and_predict, reduce_retracing=True)

    @property
    def transductive(self) -> bool:
        """Fixed at construction: it is compiled into the evaluation function."""
        return self._transductive

    # -- the inner loop --------------------------------------------------

    def _logits(self, weights, frozen, images):
        """The task learner's logits with these weights (batch statistics;
        the updated moving averages that Keras returns are dropped, as the
        original never updates them)."""
        return self.learner.stateless_call(weights, frozen, images, training=True)[0]

    def _loss(self, weights, frozen, images, labels):
        return self.loss_fn(labels, self._logits(weights, frozen, images))

    def _step(self, weights, frozen, state, images, labels):
        """One inner step: weight decay, then one optimizer step on the batch's summed loss."""
        if self.weight_decay != 1.0:
            weights = wmath.scale(weights, self.weight_decay)
        with tf.GradientTape() as tape:
            tape.watch(weights)
            loss = self._loss(weights, frozen, images, labels)
        grads = tape.gradient(loss, weights)
        weights, state = self.optimizer.apply(weights, grads, state)
        return weights, state, loss

    def _steps(self, weights, frozen, state, images, labels, batches):
        """Inner steps over `batches` (`[num_batches, batch]` indices) in a graph loop.

        Returns:
          `(weights, state, loss_sum)`.
        """
        def body(i, w, s, total):
            idx = batches[i]
            w, s, loss = self._step(w, frozen, s, tf.gather(images, idx),
                                    tf.gather(labels, idx))
            return i + 1, w, s, total + loss

        _, weights, state, total = tf.while_loop(
            lambda i, *_: i < tf.shape(batches)[0], body,
            (tf.constant(0), weights, state, tf.constant(0.0)))
        return weights, state, total

    def _adapt(self, weights, frozen, state, images, labels, batches, tail):
        """Runs a task's inner loop.

        Returns:
          `(weights, weights_before_last_step, state, mean_loss)`.
        """
        if tail.shape[0]:  # FOML tail: ordinary batches, then the held-out tail.
            head, last = batches, tail
        else:
            head, last = batches[:-1], batches[-1]
        weights, state, total = self._steps(weights, frozen, state, images, labels, head)
        before_last = weights
        weights, state, loss = self._step(weights, frozen, state, tf.gather(images, last),
                                          tf.gather(labels, last))
        steps = tf.cast(tf.shape(head)[0] + 1, tf.float32)
        return weights, before_last, state, (total + loss) / steps

    # -- meta-training ---------------------------------------------------

    def read_model(self):
        """The meta-weights and the (never used) moving statistics, as tensors."""
        return ([tf.identity(v) for v in self.model.trainable_variables],
                [tf.identity(v) for v in self.model.non_trainable_variables])

    def task_update(self, old, adapted, before_last):
        """The per-task direction averaged into the meta-update: `adapted - old`."""
        del before_last
        return wmath.subtract(adapted, old)

    def run_task(self, old, frozen, state, episodes: TrainEpisode, m):
        """Task `m` of a meta-batch: its inner loop from `old`, and its update.

        Args:
          old: the meta-weights as tensors; frozen: the non-trainable ones.
          state: the inner optimizer state the task starts from.
          episodes: a `TrainEpisode` with a leading `[meta_batch]` axis.
          m: int32 scalar, the task's index in the meta-batch.

        Returns:
          `(update, state, mean_inner_loss)`: `task_update` of the task (a list
          shaped like `old`) and the optimizer state after its inner loop.
        """
        w, before, state, loss = self._adapt(old, frozen, state, episodes.images[m],
                                             episodes.labels[m], episodes.batches[m],
                                             episodes.tail[m])
        return self.task_update(old, w, before), state, loss

    def task_updates(self, old, frozen, state, episodes: TrainEpisode, first=0, stride=1):
        """Runs tasks `first, first + stride, ...` of a meta-batch one after
        another, the inner optimizer state flowing from task to task (the
        original's sharing); `stride > 1` gives each of several replicas its share.

        Returns:
          `(updates, losses, state)`: `updates` a list of `[meta_batch, *w.shape]`
          stacks with task m's update in slot m (zeros for tasks not run here),
          `losses` float32 `[meta_batch]` mean inner losses (0 where not run),
          and the state after the last task run.
        """
        num_tasks = episodes.images.shape[0]

        def body(m, state, updates, losses):
            update, state, loss = self.run_task(old, frozen, state, episodes, m)
            updates = [tf.tensor_scatter_nd_update(s, [[m]], u[None])
                       for s, u in zip(updates, update)]
            return m + stride, state, updates, tf.tensor_scatter_nd_update(
                losses, [[m]], loss[None])

        _, state, updates, losses = tf.while_loop(
            lambda m, *_: m < num_tasks, body,
            (tf.convert_to_tensor(first, tf.int32), state,
             [tf.zeros([num_tasks] + w.shape) for w in old], tf.zeros([num_tasks])))
        return updates, losses, state

    def apply_meta_update(self, old, updates, losses, meta_step_size) -> dict:
        """Assigns `old + meta_step_size * mean(updates)` to the meta-model.

        The tasks' updates are summed in task order from stacked slots, so a
        distributed run that fills the slots on several replicas gets the
        same bits as a single device.

        Returns:
          `{"inner_loss": mean of losses}`.
        """
        num_tasks = losses.shape[0]
        total, loss_sum = [tf.zeros_like(w) for w in old], tf.constant(0.0)
        for m in range(num_tasks):
            total = [t + u[m] for t, u in zip(total, updates)]
            loss_sum = loss_sum + losses[m]
        new = wmath.add(old, wmath.scale(total, meta_step_size / num_tasks))
        for var, value in zip(self.model.trainable_variables, new):
            var.assign(value)
        return {"inner_loss": loss_sum / num_tasks}

    def _meta_step(self, episodes: TrainEpisode, meta_step_size):
        self.num_traces += 1
        old, frozen = self.read_model()
        updates, losses, state = self.task_updates(old, frozen, self.optimizer.read_state(),
                                                   episodes)
        self.optimizer.assign_state(state)
        return self.apply_meta_update(old, updates, losses, meta_step_size)

    def meta_step(self, episodes: TrainEpisode, meta_step_size: float) -> dict:
        """One outer iteration on a meta-batch of tasks.

        Args:
          episodes: a `TrainEpisode` whose tensors have a leading `[meta_batch]` axis.
          meta_step_size: epsilon, the interpolation fraction.

        Returns:
          `{"inner_loss": mean summed loss per inner step}` as a scalar tensor.
        """
        return self._meta_step_fn(episodes, tf.constant(meta_step_size, tf.float32))

    # -- evaluation ------------------------------------------------------

    def _predict(self, weights, frozen, support_images, query_images):
        def logits(images):
            return self._logits(weights, frozen, images)

        if self.transductive:
            return tf.argmax(logits(query_images), axis=-1, output_type=tf.int32)
        # Each query in its own forward pass, appended to the whole support set.
        preds = [tf.argmax(logits(tf.concat([support_images, query_images[q:q + 1]], 0))[-1],
                           output_type=tf.int32)
                 for q in range(query_images.shape[0])]
        return tf.stack(preds)

    def _adapt_and_predict(self, episode: EvalEpisode):
        self.num_traces += 1
        old, frozen = self.read_model()
        empty_tail = tf.zeros([0], tf.int32)
        w, _, _, _ = self._adapt(old, frozen, self.optimizer.read_state(),
                                 episode.support_images, episode.support_labels,
                                 episode.batches, empty_tail)
        return self._predict(w, frozen, episode.support_images, episode.query_images), w

    def adapt_and_predict(self, episode: EvalEpisode) -> tf.Tensor:
        """Fine-tunes on the support set and predicts the queries, changing no state.

        Returns:
          int32 `[N]` predicted labels of `episode.query_images`.
        """
        return self._predict_fn(episode)[0]

    def adapt(self, episode: EvalEpisode) -> keras.Model:
        """Fine-tunes on an episode's support set and returns the adapted task
        learner (a Keras model; call it with `training=True`). The meta-model
        and optimizer state are unchanged."""
        _, adapted = self._predict_fn(episode)
        for var, value in zip(self.learner.trainable_variables, adapted):
            var.assign(value)
        return self.learner

    def query_logits(self, weights, frozen, state, support_images, support_labels, batches,
                     query_images) -> tf.Tensor:
        """Fine-tunes weight tensors on a support set, then the queries' logits.

        The same computation as `adapt_and_predict` (before the argmax), on
        plain tensors and with dynamic shapes (any N' <= N, any shots, any
        number of queries, any batches), for tracing into a SavedModel.

        Args:
          weights, frozen: the model's trainable / non-trainable values.
          state: an inner optimizer state (`optimizer.read_state()`).
          support_images: float32 `[S, *image_shape]`; support_labels: int32 `[S]`.
          batches: int32 `[steps, batch]` indices into the support set.
          query_images: float32 `[Q, *image_shape]`.

        Returns:
          float32 `[Q, N]` logits.
        """
        w, _, _, _ = self._adapt(weights, frozen, state, support_images, support_labels,
                                 batches, tf.zeros([0], tf.int32))
        if self.transductive:
            return self._logits(w, frozen, query_images)
        return tf.map_fn(  # each query with the whole support set, as `_predict`
            lambda q: self._logits(w, frozen, tf.concat([support_images, q[None]], 0))[-1],
            query_images, fn_output_signature=tf.float32)


class FOML(Reptile):
    """First-order MAML (`--foml`): the update is the last inner step's change.

    That change is taken from before the last step's weight decay, so it
    includes it (ORIGINAL.md 5.3, pitfall 7).
    """

    def task_update(self, old, adapted, before_last):
        del old
        return wmath.subtract(adapted, before_last)
