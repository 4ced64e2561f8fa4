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

Speed options (issue 7; README "Speed"), off by default: `inner_state=
"per-task"` (each task of a meta-batch starts from the meta-iteration's
starting optimizer state; afterwards the state is the mean of the tasks'
final states: not the original's rule), `parallel_tasks` (that rule with all
tasks at once, via `task_batch`; equal up to float rounding), and
`adapt_and_predict_many` (many evaluation tasks at once, as one by one).
"""

import keras
import tensorflow as tf

from supervised_reptile import task_batch
from supervised_reptile import weights as wmath
from supervised_reptile.episodes import EvalEpisode, TrainEpisode
from supervised_reptile.optimizers import InnerOptimizer

INNER_STATES = ("shared", "per-task")


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
      loss_fn: `(labels, outputs) -> scalar` inner loss of one task (issue 3:
        sinusoid regression passes a mean squared error).
      inner_state: "shared" (the original: the optimizer state flows from
        task to task) or "per-task" (see the module docstring); None picks
        "per-task" with `parallel_tasks`, else "shared".
      parallel_tasks: run a meta-batch's tasks at once (needs "per-task").
    """

    def __init__(self, model: keras.Model, optimizer: InnerOptimizer,
                 weight_decay: float = 1.0, transductive: bool = False,
                 loss_fn=summed_cross_entropy, inner_state: str | None = None,
                 parallel_tasks: bool = False):
        if not 0 < weight_decay <= 1:
            raise ValueError(f"--weight-decay {weight_decay} must be in (0, 1] (a keep-fraction "
                             "applied before every inner step; 1 disables it)")
        inner_state = inner_state or ("per-task" if parallel_tasks else "shared")
        if inner_state not in INNER_STATES:
            raise ValueError(f"--inner-state {inner_state!r} is not one of {INNER_STATES}")
        if parallel_tasks and inner_state != "per-task":
            raise ValueError("--parallel-tasks needs --inner-state per-task (tasks run at once "
                             f"cannot share one optimizer state sequentially), got {inner_state!r}")
        if parallel_tasks:
            task_batch.check_supported(model)
        self.inner_state = inner_state
        self.parallel_tasks = bool(parallel_tasks)
        self.model = model
        self.learner = keras.models.clone_model(model)
        self.optimizer = optimizer
        optimizer.build(model.trainable_variables)
        self.weight_decay = float(weight_decay)
        self._transductive = bool(transductive)
        self.loss_fn = loss_fn
        self.num_traces = 0
        # The task-batched functions need a static task count: no shape relaxing.
        self._meta_step_fn = (tf.function(self._meta_step_parallel) if parallel_tasks else
                              tf.function(self._meta_step, reduce_retracing=True))
        self._predict_fn = tf.function(self._adapt_and_predict, reduce_retracing=True)
        self._predict_many_fn = tf.function(self._adapt_and_predict_many)

    @property
    def transductive(self) -> bool:
        """Fixed at construction: it is compiled into the evaluation function."""
        return self._transductive

    # -- the inner loop --------------------------------------------------

    # With `many=True` every argument has a leading `[tasks]` axis (weights,
    # images, labels, batch indices, and the optimizer state's non-scalar
    # parts): the tasks' inner loops run at once (see `task_batch`), and
    # losses are summed over the tasks.

    def _logits(self, weights, frozen, images, many=False):
        """The task learner's logits with these weights (batch statistics;
        the updated moving averages that Keras returns are dropped, as the
        original never updates them)."""
        if many:
            return task_batch.forward(self.model, weights, images)
        return self.learner.stateless_call(weights, frozen, images, training=True)[0]

    def _loss(self, weights, frozen, images, labels, many=False):
        logits = self._logits(weights, frozen, images, many)
        if many:  # the tasks' losses, summed: each task's gradient is its own
            return tf.add_n([self.loss_fn(labels[t], logits[t]) for t in range(labels.shape[0])])
        return self.loss_fn(labels, logits)

    def _step(self, weights, frozen, state, images, labels, many=False):
        """One inner step: weight decay, then one optimizer step on the batch's summed loss."""
        if self.weight_decay != 1.0:
            weights = wmath.scale(weights, self.weight_decay)
        with tf.GradientTape() as tape:
            tape.watch(weights)
            loss = self._loss(weights, frozen, images, labels, many)
        grads = tape.gradient(loss, weights)
        weights, state = self.optimizer.apply(weights, grads, state)
        return weights, state, loss

    def _steps(self, weights, frozen, state, images, labels, batches, many=False):
        """Inner steps over `batches` (`[num_batches, (tasks,) batch]` indices) in a graph loop.

        Returns:
          `(weights, state, loss_sum)`.
        """
        def body(i, w, s, total):
            idx = batches[i]
            w, s, loss = self._step(w, frozen, s, task_batch.gather(images, idx, many),
                                    task_batch.gather(labels, idx, many), many)
            return i + 1, w, s, total + loss

        _, weights, state, total = tf.while_loop(
            lambda i, *_: i < tf.shape(batches)[0], body,
            (tf.constant(0), weights, state, tf.constant(0.0)))
        return weights, state, total

    def _adapt(self, weights, frozen, state, images, labels, batches, tail, many=False):
        """Runs a task's inner loop (every task's, with `many`).

        Returns:
          `(weights, weights_before_last_step, state, mean_loss)`; with
          `many`, the loss is also averaged over the tasks.
        """
        if many:  # [tasks, num_batches, batch] -> [num_batches, tasks, batch]
            batches = tf.transpose(batches, [1, 0, 2])
            weights, state = task_batch.to_grouped((weights, state))  # no transposes per step
        if tail.shape[-1]:  # FOML tail: ordinary batches, then the held-out tail.
            head, last = batches, tail
        else:
            head, last = batches[:-1], batches[-1]
        weights, state, total = self._steps(weights, frozen, state, images, labels, head, many)
        before_last = weights
        weights, state, loss = self._step(
            weights, frozen, state, task_batch.gather(images, last, many),
            task_batch.gather(labels, last, many), many)
        steps = tf.cast(tf.shape(head)[0] + 1, tf.float32)
        if not many:
            return weights, before_last, state, (total + loss) / steps
        tasks = images.shape[0]
        weights, before_last, state = task_batch.from_grouped((weights, before_last, state), tasks)
        return weights, before_last, state, (total + loss) / steps / tasks

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
        another (`stride > 1` gives each of several replicas its share).

        With the "shared" inner state the optimizer state flows from task to
        task (the original); with "per-task" every task starts from `state`.

        Returns:
          `(updates, losses, state)`: `updates` a list of `[meta_batch, *w.shape]`
          stacks with task m's update in slot m (zeros for tasks not run here);
          `losses` `{"inner_loss": float32 [meta_batch]}` mean inner losses;
          `state` the state after the last task ("shared") or every task's
          final state in its slot ("per-task"); `merge_state` turns it into
          the state after the meta-iteration.
        """
        num_tasks = episodes.images.shape[0]
        per_task = self.inner_state == "per-task"

        def body(m, carry, slots, updates, losses):
            update, end, loss = self.run_task(old, frozen, state if per_task else carry,
                                              episodes, m)
            if per_task:
                slots = tf.nest.map_structure(lambda s, e: put_slot(s, m, e), slots, end)
            updates = [put_slot(s, m, u) for s, u in zip(updates, update)]
            return m + stride, end, slots, updates, put_slot(losses, m, loss)

        slots = (tf.nest.map_structure(lambda x: tf.zeros([num_tasks] + x.shape, x.dtype), state)
                 if per_task else ())
        _, carry, slots, updates, losses = tf.while_loop(
            lambda m, *_: m < num_tasks, body,
            (tf.convert_to_tensor(first, tf.int32), state, slots,
             [tf.zeros([num_tasks] + w.shape, w.dtype) for w in old], tf.zeros([num_tasks])))
        return updates, {"inner_loss": losses}, slots if per_task else carry

    def merge_state(self, state):
        """The inner optimizer state after a meta-iteration, from `task_updates`'
        state: unchanged ("shared"), or the mean of the tasks' final states
        ("per-task", summed slot by slot in task order)."""
        if self.inner_state != "per-task":
            return state
        return tf.nest.map_structure(lambda s: mean_in_order([s])[0], state)

    def apply_meta_update(self, old, updates, losses, meta_step_size) -> dict:
        """Assigns `old + meta_step_size * mean(updates)` to the meta-model.

        The tasks' updates are summed in task order from stacked slots, so a
        distributed run that fills the slots on several replicas gets the
        same bits as a single device.

        Returns:
          The mean over tasks of each of `losses`.
        """
        new = wmath.add(old, wmath.scale(mean_in_order(updates), meta_step_size))
        for var, value in zip(self.model.trainable_variables, new):
            var.assign(value)
        return {k: mean_in_order([v])[0] for k, v in losses.items()}

    def _meta_step_parallel(self, episodes: TrainEpisode, meta_step_size):
        """`_meta_step` with per-task states, all tasks at once."""
        self.num_traces += 1
        old, frozen = self.read_model()
        num_tasks = episodes.images.shape[0]
        start = task_batch.broadcast_state(self.optimizer.read_state(), num_tasks)
        w, before, state, loss = self._adapt(
            task_batch.broadcast(old, num_tasks), frozen, start, episodes.images,
            episodes.labels, episodes.batches, episodes.tail, many=True)
        # The update of every task against the broadcast old weights, summed.
        update = self.task_update(task_batch.broadcast(old, num_tasks), w, before)
        total = [tf.reduce_sum(u, axis=0) for u in update]
        new = wmath.add(old, wmath.scale(total, meta_step_size / num_tasks))
        for var, value in zip(self.model.trainable_variables, new):
            var.assign(value)
        self.optimizer.assign_state(task_batch.mean_state(state))
        return {"inner_loss": loss}

    def _meta_step(self, episodes: TrainEpisode, meta_step_size):
        self.num_traces += 1
        old, frozen = self.read_model()
        updates, losses, state = self.task_updates(old, frozen, self.optimizer.read_state(),
                                                   episodes)
        self.optimizer.assign_state(self.merge_state(state))
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

    def _predict(self, weights, frozen, support_images, query_images, many=False):
        def logits(images):
            return self._logits(weights, frozen, images, many)

        if self.transductive:
            return tf.argmax(logits(query_images), axis=-1, output_type=tf.int32)
        # Each query in its own forward pass, appended to the whole support set.
        axis = 1 if many else 0
        queries = query_images.shape[axis]
        preds = [tf.argmax(logits(tf.concat([support_images,
                                             tf.gather(query_images, [q], axis=axis)],
                                            axis))[..., -1, :], axis=-1, output_type=tf.int32)
                 for q in range(queries)]
        return tf.stack(preds, axis=-1)

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

    def _adapt_and_predict_many(self, episodes: EvalEpisode):
        self.num_traces += 1
        old, frozen = self.read_model()
        tasks = episodes.support_images.shape[0]
        w, _, _, _ = self._adapt(task_batch.broadcast(old, tasks), frozen,
                                 task_batch.broadcast_state(self.optimizer.read_state(), tasks),
                                 episodes.support_images, episodes.support_labels,
                                 episodes.batches, tf.zeros([tasks, 0], tf.int32), many=True)
        return self._predict(w, frozen, episodes.support_images, episodes.query_images, many=True)

    def adapt_and_predict_many(self, episodes: EvalEpisode) -> tf.Tensor:
        """`adapt_and_predict` on many tasks at once (each from the meta-weights
        and the current optimizer state; no state changes).

        Args:
          episodes: an `EvalEpisode` whose tensors have a leading `[tasks]` axis.

        Returns:
          int32 `[tasks, N]` predicted labels; equal to calling
          `adapt_and_predict` on each task, up to float rounding.
        """
        return self._predict_many_fn(episodes)

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


def put_slot(stack, m, value):
    """`stack` with slot `m` (of its leading axis) replaced by `value`."""
    return tf.tensor_scatter_nd_update(stack, [[m]], value[None])


def mean_in_order(stacks: list) -> list:
    """Mean over the leading axis of each `[tasks, ...]` stack, summed slot by
    slot in task order: the same bits wherever the slots were filled."""
    means = []
    for stack in stacks:
        total = tf.zeros_like(stack[0])
        for m in range(stack.shape[0]):
            total = total + stack[m]
        means.append(total / stack.shape[0])
    return means


class FOML(Reptile):
    """First-order MAML (`--foml`): the update is the last inner step's change.

    That change is taken from before the last step's weight decay, so it
    includes it (ORIGINAL.md 5.3, pitfall 7).
    """

    def task_update(self, old, adapted, before_last):
        del old
        return wmath.subtract(adapted, before_last)
