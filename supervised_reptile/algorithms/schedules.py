"""Task schedules: how the tasks of a meta-batch share the inner optimizer state.

  * `Shared` (the original's rule, docs/semantics.md#shared-inner-adam): the
    tasks run one after another and the state flows from task to task.
  * `PerTask`: every task starts from the meta-iteration's starting state;
    afterwards the state is the mean of the tasks' final states. Not the
    original's rule, but it makes tasks independent.
  * `AtOnce`: `PerTask`'s rule with all tasks in one inner loop
    (`StackedTasks`): equal to `PerTask` up to float rounding, faster where
    one task leaves cores idle.

With a state-free inner loop (SGD, MAML) the three differ only in speed. A
schedule fills one slot per task (`weights.put_slot`), so several replicas
can each run a share of the tasks (`first`, `stride`) and an all-reduce
gathers them (`distribute`).
"""

import abc

import tensorflow as tf

from supervised_reptile import weights as wmath
from supervised_reptile.algorithms import task_batch
from supervised_reptile.algorithms.inner_loop import StackedTasks

NAMES = ("shared", "per-task", "at-once")


class Schedule(abc.ABC):
    """Runs a meta-batch's tasks through an `Algorithm`'s `task_update`."""

    def check(self, model) -> None:
        """Raises ValueError if this schedule cannot train `model` (before any work)."""
        del model

    #: How the replicas of a distributed run combine their `task_updates` states.
    replica_reduction = tf.distribute.ReduceOp.SUM

    @abc.abstractmethod
    def task_updates(self, algorithm, old, frozen, state, episodes, first: int = 0,
                     stride: int = 1):
        """See `Algorithm.task_updates`."""

    def merge_state(self, state):
        """The state after the meta-iteration: the mean of the tasks' final states."""
        return wmath.merge_slots(state)


def _one_at_a_time(algorithm, old, frozen, state, episodes, first, stride, shared: bool):
    """Tasks one after another; with `shared` the state flows between them,
    otherwise each task's final state goes to its slot."""
    num_tasks = episodes.images.shape[0]

    def body(m, carry, slots, updates, losses):
        update, end, loss = algorithm.task_update(
            algorithm.one_task, old, frozen, carry if shared else state, episodes.images[m],
            episodes.labels[m], episodes.batches[m], episodes.tail[m])
        if not shared:
            slots = tf.nest.map_structure(lambda s, e: wmath.put_slot(s, m, e), slots, end)
        updates = [wmath.put_slot(s, m, u) for s, u in zip(updates, update)]
        losses = {k: wmath.put_slot(v, m, loss[k]) for k, v in losses.items()}
        return m + stride, end, slots, updates, losses

    _, carry, slots, updates, losses = tf.while_loop(
        lambda m, *_: m < num_tasks, body,
        (tf.convert_to_tensor(first, tf.int32), state,
         () if shared else wmath.empty_slots(state, num_tasks), wmath.empty_slots(old, num_tasks),
         {k: tf.zeros([num_tasks], old[0].dtype) for k in algorithm.loss_names}))
    return updates, losses, carry if shared else slots


class Shared(Schedule):
    """The original's rule. Across replicas each replica carries the state
    through its own share of the tasks, and the replicas' states are averaged."""

    replica_reduction = tf.distribute.ReduceOp.MEAN

    def task_updates(self, algorithm, old, frozen, state, episodes, first=0, stride=1):
        return _one_at_a_time(algorithm, old, frozen, state, episodes, first, stride, True)

    def merge_state(self, state):
        return state


class PerTask(Schedule):
    def task_updates(self, algorithm, old, frozen, state, episodes, first=0, stride=1):
        return _one_at_a_time(algorithm, old, frozen, state, episodes, first, stride, False)


class AtOnce(Schedule):
    def check(self, model) -> None:
        """Raises ValueError (naming the layer) if `model` cannot run tasks at once."""
        task_batch.check_supported(model)

    def task_updates(self, algorithm, old, frozen, state, episodes, first=0, stride=1):
        if (first, stride) != (0, 1):
            raise ValueError("the at-once schedule runs every task of a meta-batch in one inner "
                             "loop; it cannot be split across replicas")
        tasks = episodes.images.shape[0]
        update, end, losses = algorithm.task_update(
            StackedTasks(algorithm.model, tasks), wmath.broadcast(old, tasks), frozen,
            wmath.broadcast(state, tasks), episodes.images, episodes.labels, episodes.batches,
            episodes.tail)
        return update, losses, end


_SCHEDULES = {"shared": Shared, "per-task": PerTask, "at-once": AtOnce}


def make(schedule: "Schedule | str") -> Schedule:
    """A schedule, or the schedule of that name (`NAMES`)."""
    if isinstance(schedule, Schedule):
        return schedule
    if schedule not in _SCHEDULES:
        raise ValueError(f"unknown task schedule {schedule!r}; valid: {NAMES}")
    return _SCHEDULES[schedule]()
