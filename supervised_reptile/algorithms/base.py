"""The one meta-learner interface, and the base that every algorithm builds on.

`MetaLearner` is what training, evaluation and checkpoints use: Reptile,
FOML, MAML (through `Algorithm`) and `distribute.DistributedLearner`
implement it, so no caller asks what it holds.

`Algorithm` implements it once for every algorithm, from two hooks a variant
overrides: `task_update` (one task's contribution to the meta-update: Reptile's
direction, FOML's last step, MAML's meta-gradient) and `outer_update` (what the
mean contribution does to the meta-weights: Reptile's interpolation, MAML's
Adam step). Where each task's inner loop starts and which inner optimizer
state it sees is the `schedules.Schedule`'s business.

State rules, tested in tests/test_algorithms.py and tests/test_maml.py:
  * `meta_step` changes the meta-weights, the inner optimizer's state (Reptile
    and FOML with a stateful optimizer: docs/semantics.md#shared-inner-adam)
    and the outer optimizer's state (MAML).
  * Evaluation (`adapt_and_predict*`, `adapt`) starts every task from the
    meta-weights and the current inner optimizer state and changes neither.
  * Batch norm's moving statistics are never read or written.
"""

import abc

import keras
import tensorflow as tf

from supervised_reptile import guard, weights as wmath
from supervised_reptile.algorithms import schedules
from supervised_reptile.algorithms.inner_loop import InnerLoop, OneTask, StackedTasks, query_logits
from supervised_reptile.episodes import EvalEpisode, TrainEpisode


def compile_graph(fn):
    """`tf.function` without AutoGraph.

    The loops here are explicit `tf.while_loop`s and no Python branch depends
    on a tensor's value, so AutoGraph would change nothing; converting the
    Keras layer code it would walk into costs seconds of every run's start-up.
    """
    return tf.function(fn, autograph=False)


class MetaLearner(abc.ABC):
    """What a training loop, an evaluation and a checkpoint need of a meta-learner.

    Attributes:
      model: the meta-model; its trainable variables are the meta-weights.
      optimizer: the optimizer whose state a checkpoint saves beside the
        weights (Reptile's inner optimizer; MAML's outer Adam).
      transductive: evaluation predicts all queries of a task in one batch
        (True) or each query together with the whole support set (False).
    """

    model: keras.Model
    optimizer: tf.Module
    transductive: bool

    @abc.abstractmethod
    def meta_step(self, episodes: TrainEpisode, meta_step_size: float) -> dict:
        """One meta-iteration on a meta-batch.

        Args:
          episodes: a `TrainEpisode` whose tensors have a leading `[meta_batch]` axis.
          meta_step_size: epsilon of Reptile's interpolation (MAML ignores it:
            its outer step is Adam with a fixed learning rate).

        Returns:
          Scalar float32 tensors: `inner_loss` (the mean loss per inner step),
          for MAML `query_loss`, and `guard.WEIGHTS_FINITE` (1.0 if every new
          meta-weight is finite), which `guard.check_finite` reads.
        """

    @abc.abstractmethod
    def adapt_and_predict(self, episode: EvalEpisode, every_step: bool = False) -> tf.Tensor:
        """Fine-tunes on one task's support set; the queries' outputs. No state changes.

        Returns:
          float32 `[R, Q, C]` outputs (logits) of the `Q` queries: `R = 1`
          after the last inner step, or with `every_step` `R = steps + 1`
          (row `s` after `s` steps; row 0 the meta-model's own outputs).
        """

    @abc.abstractmethod
    def adapt_and_predict_many(self, episodes: EvalEpisode,
                               every_step: bool = False) -> tf.Tensor:
        """`adapt_and_predict` on a stack of tasks at once (a leading `[tasks]` axis).

        Returns:
          float32 `[tasks, R, Q, C]`, equal to task-by-task results up to
          float rounding.
        """

    @abc.abstractmethod
    def adapt(self, episode: EvalEpisode) -> keras.Model:
        """The task learner holding one task's adapted weights (call it with
        `training=True`). The meta-model and optimizer states are unchanged."""


class Algorithm(MetaLearner):
    """A meta-learner on one device, from the `task_update` and `outer_update` hooks.

    Args:
      model: the meta-model.
      inner: the inner loop (optimizer, loss, weight decay).
      optimizer: the checkpointed optimizer (see `MetaLearner`); built here.
      transductive: see `MetaLearner`.
      schedule: a `schedules.Schedule` or its name (`schedules.NAMES`).
    """

    #: Keys of the per-task losses `task_update` returns.
    loss_names = ("inner_loss",)

    def __init__(self, model: keras.Model, inner: InnerLoop, optimizer: tf.Module,
                 transductive: bool = False, schedule: "schedules.Schedule | str" = "shared"):
        self.model = model
        self.learner = keras.models.clone_model(model)
        self.inner = inner
        self.optimizer = optimizer
        for opt in (inner.optimizer, optimizer):
            opt.build(model.trainable_variables)
        self.transductive = bool(transductive)
        self.schedule = schedules.make(schedule)
        self.schedule.check(model)
        self.one_task = OneTask(self.learner)
        self._compiled = {"meta_step": compile_graph(self._meta_step),
                          "predict": compile_graph(self._predict),
                          "predict_many": compile_graph(self.stacked_outputs)}

    # -- the hooks -------------------------------------------------------

    @abc.abstractmethod
    def task_update(self, forward: OneTask, weights, frozen, state, images, labels, batches,
                    tail):
        """One task's contribution to the meta-update (every task of a stack with
        `StackedTasks`: then each argument but `frozen` has a `[tasks]` axis).

        Args:
          weights, frozen: the meta-weights and non-trainable values as tensors.
          state: the inner optimizer state the task starts from.
          images, labels, batches, tail: the fields of its `TrainEpisode`.

        Returns:
          `(update, state, losses)`: a weight list, the inner optimizer state
          after the task, and `{name: loss}` for each of `loss_names`.
        """

    @abc.abstractmethod
    def outer_update(self, old: list, mean_update: list, meta_step_size) -> list:
        """The new meta-weights from the old and the tasks' mean update (may
        change the outer optimizer's state)."""

    # -- meta-training ---------------------------------------------------

    def read_weights(self) -> tuple[list, list]:
        """The meta-weights and the (never used) moving statistics, as tensors."""
        return ([tf.identity(v) for v in self.model.trainable_variables],
                [tf.identity(v) for v in self.model.non_trainable_variables])

    def inner_state(self):
        """The inner optimizer's state as tensors (`()` for SGD)."""
        return self.inner.optimizer.read_state()

    def task_updates(self, old, frozen, state, episodes: TrainEpisode, first=0, stride=1):
        """Tasks `first, first + stride, ...` of a meta-batch, each result in its slot.

        Returns:
          `(updates, losses, state)`: `updates` a list of `[meta_batch, *w.shape]`
          slot stacks (zeros for tasks not run here), `losses` `{name:
          [meta_batch]}`, `state` for `merge_state` (see the schedule).
        """
        return self.schedule.task_updates(self, old, frozen, state, episodes, first, stride)

    def merge_state(self, state):
        """The inner optimizer state after a meta-iteration, from `task_updates`'."""
        return self.schedule.merge_state(state)

    def apply_meta_update(self, old, updates, losses, state, meta_step_size) -> dict:
        """Writes the merged inner state and the meta-update to the variables.

        The slots are summed in task order (`weights.mean_in_order`), so a
        distributed run that filled them on several replicas gets the same
        bits as one device.

        Returns:
          The mean over tasks of each of `losses`, and `guard.WEIGHTS_FINITE`
          (1.0 if every new meta-weight is finite, else 0.0).
        """
        if tf.nest.flatten(state):
            self.inner.optimizer.assign_state(self.merge_state(state))
        new = self.outer_update(old, [wmath.mean_in_order(u) for u in updates], meta_step_size)
        for var, value in zip(self.model.trainable_variables, new):
            var.assign(value)
        stats = {name: wmath.mean_in_order(loss) for name, loss in losses.items()}
        # A loss can stay finite while the weights are not (a fused batch norm +
        # ReLU maps NaN activations to 0), so the guard is told about both.
        stats[guard.WEIGHTS_FINITE] = tf.cast(
            tf.reduce_all([tf.reduce_all(tf.math.is_finite(w)) for w in new]), tf.float32)
        return stats

    def _meta_step(self, episodes: TrainEpisode, meta_step_size):
        old, frozen = self.read_weights()
        updates, losses, state = self.task_updates(old, frozen, self.inner_state(), episodes)
        return self.apply_meta_update(old, updates, losses, state, meta_step_size)

    def meta_step(self, episodes: TrainEpisode, meta_step_size: float) -> dict:
        return self._compiled["meta_step"](episodes, tf.constant(meta_step_size, tf.float32))

    # -- evaluation ------------------------------------------------------

    def _adapt(self, forward, weights, frozen, state, episode: EvalEpisode, every_step: bool):
        """`(adapted weights, outputs [R, Q, C] ([R, tasks, Q, C] stacked))`."""
        def outputs(w):
            return query_logits(forward, w, frozen, episode.support_images,
                                episode.query_images, self.transductive)

        adapted, _, _, _, records = self.inner.run(
            forward, weights, frozen, state, episode.support_images, episode.support_labels,
            episode.batches, record=outputs if every_step else None)
        return adapted, records if every_step else outputs(adapted)[None]

    def _predict(self, episode: EvalEpisode, every_step: bool):
        weights, frozen = self.read_weights()
        return self._adapt(self.one_task, weights, frozen, self.inner_state(), episode,
                           every_step)

    def stacked_outputs(self, episodes: EvalEpisode, every_step: bool) -> tf.Tensor:
        """The uncompiled body of `adapt_and_predict_many`, for callers that
        compile it into a function of their own (`distribute`)."""
        weights, frozen = self.read_weights()
        tasks = episodes.support_images.shape[0]
        _, outputs = self._adapt(StackedTasks(self.model, tasks), wmath.broadcast(weights, tasks),
                                 frozen, wmath.broadcast(self.inner_state(), tasks), episodes,
                                 every_step)
        return tf.transpose(outputs, [1, 0, 2, 3])  # [R, tasks, Q, C] -> [tasks, R, Q, C]

    def adapt_and_predict(self, episode: EvalEpisode, every_step: bool = False) -> tf.Tensor:
        return self._compiled["predict"](episode, every_step)[1]

    def adapt_and_predict_many(self, episodes: EvalEpisode,
                               every_step: bool = False) -> tf.Tensor:
        return self._compiled["predict_many"](episodes, every_step)

    def adapt(self, episode: EvalEpisode) -> keras.Model:
        adapted, _ = self._compiled["predict"](episode, False)
        for var, value in zip(self.learner.trainable_variables, adapted):
            var.assign(value)
        return self.learner

    def logits_after_adaptation(self, weights, frozen, state, support_images, support_labels,
                                batches, query_images) -> tf.Tensor:
        """`adapt_and_predict` on plain tensors with dynamic shapes (any number
        of classes up to N, shots, queries and batches), for a SavedModel.

        Args:
          weights, frozen: trainable / non-trainable values; state: an inner
            optimizer state (`inner_state()`).
          support_images: float32 `[S, ...]`; support_labels: int32 `[S]`.
          batches: int32 `[steps, batch]` indices into the support set.
          query_images: float32 `[Q, ...]`.

        Returns:
          float32 `[Q, N]` logits.
        """
        episode = EvalEpisode(support_images, support_labels, batches, query_images, None)
        return self._adapt(self.one_task, weights, frozen, state, episode, False)[1][0]

    # -- instrumentation -------------------------------------------------

    def tracing_counts(self) -> dict[str, int]:
        """How often each compiled function was traced (a retrace costs seconds:
        tests and benchmarks check that a run traces each once)."""
        return {name: fn.experimental_get_tracing_count() for name, fn in self._compiled.items()}
