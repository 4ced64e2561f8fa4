"""The meta-training loop: anneal, meta-step, monitor, checkpoint (docs/semantics.md#monitoring)."""

import time
from typing import Callable, Iterator

from supervised_reptile import guard
from supervised_reptile.algorithms.base import MetaLearner
from supervised_reptile.episodes import EvalEpisode, TrainEpisode
from supervised_reptile.evaluate import evaluate


def meta_step_size(iteration: int, meta_iters: int, initial: float, final: float) -> float:
    """Linear annealing: `frac * final + (1 - frac) * initial` with
    `frac = iteration / meta_iters`; the final value is approached, never reached."""
    frac = iteration / meta_iters
    return frac * final + (1 - frac) * initial


def _num_tasks(batch) -> int:
    """Tasks in a meta-batch (the leading axis of its images)."""
    images = getattr(batch, "images", None)
    return int(images.shape[0]) if images is not None else 1


def train(algorithm: MetaLearner, tasks: Iterator[TrainEpisode], monitor: dict[str, Iterator[EvalEpisode]],
          save: Callable[[int], None], *,
          meta_iters: int, meta_step: float, meta_step_final: float, eval_interval: int,
          num_classes: int, start_iteration: int = 0, log_fn: Callable[[str], None] = print,
          time_deadline: float | None = None, checkpoint_interval: int = 100,
          tasks_at_once: int = 16, recorder=None, progress=None,
          stop: guard.StopFlag | None = None) -> int:
    """Runs meta-iterations `start_iteration .. meta_iters - 1`.

    At iteration `i`: one meta-step with the annealed step size; if
    `i % eval_interval == 0`, one evaluation task per monitored split, up to
    `tasks_at_once` adapted together (`batch <i>: train=<acc> test=<acc>` is
    logged and the accuracies go to `recorder.evaluated`); if
    `i % checkpoint_interval == 0` or `i` is the last iteration, `save(i)`.

    Args:
      algorithm: the meta-learner.
      tasks: meta-batches of training episodes, the first for `start_iteration`.
      monitor: split name -> endless evaluation episodes, in print order.
      save: called with the iteration number to write a checkpoint.
      time_deadline: `time.time()` after which to stop (after that iteration).
      checkpoint_interval: iterations between checkpoints (the original's 100).
      tasks_at_once: monitoring tasks adapted at once (`evaluate.evaluate`).
      recorder: optional `summaries.Summaries` (TensorBoard) told about every
        meta-step (`train_step`) and monitoring evaluation (`evaluated`).
      progress: optional `progress.Progress`, updated after every iteration.
      stop: when `stop.requested` (Ctrl-C or SIGTERM), the current iteration is saved and
        `guard.Interrupted` raised.

    Raises:
      guard.NonFiniteLoss: a meta-step's loss is NaN or infinite (checked
        before anything of that iteration is saved).
      guard.Interrupted: after `stop` was requested.

    Returns:
      The number of the next iteration to run (`meta_iters` when finished).
    """
    for i in range(start_iteration, meta_iters):
        step = meta_step_size(i, meta_iters, meta_step, meta_step_final)
        started = time.perf_counter()
        batch = next(tasks)
        stats = algorithm.meta_step(batch, step)
        guard.check_finite(stats, i)
        trained = time.perf_counter()
        if recorder is not None:
            recorder.train_step(i, stats, step, trained - started, _num_tasks(batch))
        if i % eval_interval == 0:
            tasks_now = [next(episodes) for episodes in monitor.values()]  # one per split
            counts = (evaluate(algorithm, tasks_now, len(tasks_now), tasks_at_once)
                      if monitor else [])
            accs = {name: int(c[-1]) / num_classes for name, c in zip(monitor, counts)}
            log_fn("batch %d: %s" % (i, " ".join("%s=%f" % kv for kv in accs.items())))
            if recorder is not None:
                recorder.evaluated(i, accs, time.perf_counter() - trained)
        stopping = stop is not None and stop.requested
        if i % checkpoint_interval == 0 or i == meta_iters - 1 or stopping:
            save(i)
        if progress is not None:
            progress.update(i + 1)
        if stopping:
            raise guard.Interrupted(i, stop.signum)
        if time_deadline is not None and time.time() > time_deadline:
            return i + 1
    return max(start_iteration, meta_iters)
