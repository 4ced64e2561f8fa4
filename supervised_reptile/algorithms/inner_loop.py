"""The inner loop: fine-tuning weight tensors on one task, or on a stack of tasks.

Two `Forward`s run the model on weight tensors: `OneTask` (the task learner,
a clone of the meta-model, through `stateless_call`) and `StackedTasks` (a
leading `[tasks]` axis on weights, images, labels and batch indices; see
`task_batch`). `InnerLoop` is written once against that interface, so the
meta-training of Reptile and FOML, every evaluation, MAML's evaluation and
the exported `adapt_and_predict` all run the same steps.

Batch norm always uses the batch's statistics, and the moving averages that
Keras returns are dropped (docs/semantics.md#batch-statistics).
"""

from typing import Callable

import keras
import tensorflow as tf

from supervised_reptile import weights as wmath
from supervised_reptile.algorithms import task_batch
from supervised_reptile.optimizers import InnerOptimizer

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


class OneTask:
    """One task: images `[batch, ...]`, labels `[batch]`, weights as the model's."""

    def __init__(self, learner: keras.Model):
        self.model = learner

    def logits(self, weights, frozen, images):
        return self.model.stateless_call(weights, frozen, images, training=True)[0]

    def losses(self, loss_fn: LossFn, labels, outputs):
        """`(loss to differentiate, the task's loss)`."""
        loss = loss_fn(labels, outputs)
        return loss, loss

    def gather(self, values, indices):
        return tf.gather(values, indices)

    def steps_first(self, batches):
        """`[steps, batch]` batch indices, unchanged."""
        return batches

    def enter(self, nest):
        """The layout the loop carries (the model's own)."""
        return nest

    def leave(self, nest):
        return nest

    #: The axis of a batch's examples in images and outputs.
    batch_axis = 0
    #: The shape of the per-task losses.
    loss_shape = ()


class StackedTasks(OneTask):
    """`tasks` tasks at once: every tensor has a leading `[tasks]` axis.

    The tasks' losses are summed for the gradient: each task's weights get
    exactly their own task's gradient.
    """

    def __init__(self, model: keras.Model, tasks: int):
        task_batch.check_supported(model)
        self.model = model
        self.tasks = tasks
        self.loss_shape = (tasks,)

    def logits(self, weights, frozen, images):
        return task_batch.forward(self.model, weights, images)

    def losses(self, loss_fn: LossFn, labels, outputs):
        per_task = tf.stack([loss_fn(labels[t], outputs[t]) for t in range(self.tasks)])
        return tf.reduce_sum(per_task), per_task

    def gather(self, values, indices):
        return tf.gather(values, indices, batch_dims=1)

    def steps_first(self, batches):
        """`[tasks, steps, batch]` -> `[steps, tasks, batch]`."""
        return tf.transpose(batches, [1, 0, 2])

    def enter(self, nest):
        # Conv kernels stay in the grouped layout across steps: no transposes per step.
        return task_batch.to_grouped(nest)

    def leave(self, nest):
        return task_batch.from_grouped(nest, self.tasks)

    batch_axis = 1


class InnerLoop:
    """Inner steps: weight decay, then one optimizer step on a batch's loss.

    Args:
      optimizer: the update rule and the layout of its state (its variables
        are not touched here: states are passed in and returned).
      loss_fn: `(labels, outputs) -> scalar` loss of one task's batch.
      weight_decay: keep-fraction multiplied into every weight before every
        step (1: none).
      stop_gradients: cut the gradients out of the graph (first-order MAML:
        an outer tape then sees no second-order terms).
    """

    def __init__(self, optimizer: InnerOptimizer, loss_fn: LossFn, weight_decay: float = 1.0,
                 stop_gradients: bool = False):
        if not 0 < weight_decay <= 1:
            raise ValueError(f"weight_decay {weight_decay} must be in (0, 1] (a keep-fraction "
                             "applied before every inner step; 1 disables it)")
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.weight_decay = float(weight_decay)
        self.stop_gradients = bool(stop_gradients)

    def step(self, forward: OneTask, weights, frozen, state, images, labels):
        """One step on a batch. Returns `(weights, state, loss per task)`."""
        if self.weight_decay != 1.0:
            weights = wmath.scale(weights, self.weight_decay)
        with tf.GradientTape() as tape:
            tape.watch(weights)
            total, loss = forward.losses(self.loss_fn, labels,
                                         forward.logits(weights, frozen, images))
        grads = tape.gradient(total, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if self.stop_gradients:
            grads = [tf.stop_gradient(g) for g in grads]
        weights, state = self.optimizer.apply(weights, grads, state)
        return weights, state, loss

    def _batch_step(self, forward, weights, frozen, state, images, labels, indices):
        return self.step(forward, weights, frozen, state, forward.gather(images, indices),
                         forward.gather(labels, indices))

    def run(self, forward: OneTask, weights, frozen, state, images, labels, batches, tail=None,
            record: Callable | None = None):
        """Inner steps over `batches` (then `tail`) in a graph loop.

        Args:
          forward: `OneTask` or `StackedTasks` (then every argument but
            `frozen` has a leading `[tasks]` axis, scalars of `state` excepted).
          weights, frozen: trainable / non-trainable values; state: the
            optimizer state to start from.
          images, labels: the task's examples `[S, ...]` and labels `[S]`.
          batches: int32 `[steps, batch]` indices into them.
          tail: int32 `[T]` indices of a final batch run after all of
            `batches` (FOML's tail); None or empty: none.
          record: `weights -> tensor`, called before the first step and after
            every step (to evaluate every step cheaply in one loop).

        Returns:
          `(weights, weights_before_last_step, state, mean_loss, records)`:
          `mean_loss` the loss per step averaged over the steps (per task
          with `StackedTasks`); `records` the stacked results of `record`,
          `[steps + 1, ...]` (None without `record`).
        """
        batches = forward.steps_first(batches)
        weights, state = forward.enter((weights, state))
        # Every step of `batches` runs in one graph loop that also carries the
        # weights before its latest step: one copy of the step in the graph
        # (half the tracing), and grappler rewrites all of them alike.
        with_tail = tail is not None and bool(tail.shape[-1])
        trace = ()  # a TensorArray of the records, or nothing
        if record is not None:
            trace = tf.TensorArray(weights[0].dtype,
                                   size=tf.shape(batches)[0] + 1 + int(with_tail))
            trace = trace.write(0, record(weights))

        step = lambda w, s, batch: self._batch_step(  # noqa: E731
            forward, w, frozen, s, images, labels, batch)
        if _pools(forward.model):
            step = _separate_function(step)

        def body(i, w, _, s, total, trace):
            new, s, loss = step(w, s, batches[i])
            if record is not None:
                trace = trace.write(i + 1, record(new))
            return i + 1, new, w, s, total + loss, trace

        steps, weights, before_last, state, total, trace = tf.while_loop(
            lambda i, *_: i < tf.shape(batches)[0], body,
            (tf.constant(0), weights, weights, state,
             tf.zeros(forward.loss_shape, weights[0].dtype), trace))
        if with_tail:  # FOML's tail: the final step on its own batch
            before_last = weights
            weights, state, loss = self._batch_step(forward, weights, frozen, state, images,
                                                    labels, tail)
            if record is not None:
                trace = trace.write(steps + 1, record(weights))
            steps, total = steps + 1, total + loss
        records = trace.stack() if record is not None else None
        weights, before_last, state = forward.leave((weights, before_last, state))
        return weights, before_last, state, total / tf.cast(steps, total.dtype), records

    def unrolled(self, forward: OneTask, weights, frozen, state, images, labels, batches):
        """The same steps as `run`, unrolled in Python (a static step count), so
        an outer tape can differentiate through them (MAML).

        Returns:
          `(weights, state, loss before the first step (per task); 0 without a step)`.
        """
        batches = forward.steps_first(batches)
        first = None
        for step in range(batches.shape[0]):
            weights, state, loss = self._batch_step(forward, weights, frozen, state, images,
                                                    labels, batches[step])
            first = loss if first is None else first
        if first is None:  # no step: the meta-weights themselves (a plain gradient for MAML)
            first = tf.zeros(forward.loss_shape, weights[0].dtype)
        return weights, state, first


def _pools(model: keras.Model) -> bool:
    return any(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)


def _separate_function(fn):
    """`fn` as a graph function that the caller's graph calls rather than inlines.

    oneDNN's fast max-pooling gradient needs the pooling's forward op as its
    direct input, and TensorFlow's oneDNN rewrite of a while loop's body finds
    that pairing only some of the time (it varied from process to process on
    the same program: Eigen's single-threaded gradient then took 30% of a
    Mini-ImageNet meta-iteration). In a function of its own, called from the
    loop, every pooling gradient was rewritten in every process we tried
    (docs/performance.md#mini-imagenets-pooling-gradient). Only models that
    pool need it: the call costs Omniglot's small steps about 10%.
    """
    return tf.function(fn, autograph=False, experimental_attributes={"_noinline": True})


def query_logits(forward: OneTask, weights, frozen, support_images, query_images,
                 transductive: bool):
    """Logits of the queries after adaptation.

    Transductive: all queries in one batch. Otherwise each query in its own
    forward pass, appended to the whole support set, so batch norm sees the
    support set's statistics plus that one query
    (docs/semantics.md#evaluation-tasks).

    Args:
      support_images, query_images: `[S, ...]` and `[Q, ...]` (a leading
        `[tasks]` axis with `StackedTasks`); Q may be dynamic with `OneTask`.

    Returns:
      float32 `[Q, N]` (`[tasks, Q, N]`).
    """
    if transductive:
        return forward.logits(weights, frozen, query_images)
    axis = forward.batch_axis

    def one_query(query):  # query: [1, ...] (or [tasks, 1, ...])
        out = forward.logits(weights, frozen, tf.concat([support_images, query], axis))
        return out[-1:] if axis == 0 else out[:, -1:]

    queries = query_images.shape[axis]
    if queries is None:  # a dynamic query count (the SavedModel's signatures)
        return tf.map_fn(lambda q: one_query(q[None])[0], query_images,
                         fn_output_signature=tf.float32)
    # Traced once and inlined at every query: the graph is the same as tracing
    # each query's pass, which took seconds of start-up with 20 queries.
    one_query = tf.function(one_query, autograph=False)
    return tf.concat([one_query(tf.gather(query_images, [q], axis=axis))
                      for q in range(queries)], axis)
