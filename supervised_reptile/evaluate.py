"""Evaluation: adapt on many tasks and count correct queries (ORIGINAL.md 3.4, 7)."""

from typing import Iterable

import numpy as np
import tensorflow as tf

from supervised_reptile.episodes import EvalEpisode


def count_correct(algorithm, episode: EvalEpisode) -> int:
    """Correct queries (0..N) of one task after fine-tuning; changes no state."""
    predictions = algorithm.adapt_and_predict(episode)
    return int(tf.reduce_sum(tf.cast(predictions == episode.query_labels, tf.int32)))


#: Evaluation tasks adapted at once by `evaluate` (`--eval-tasks-at-once`).
TASKS_AT_ONCE = 16


def _count_many(algorithm, chunk: list, size: int) -> list[int]:
    """Correct counts of the tasks in `chunk`, adapted `size` at a time.

    A short chunk is padded with copies of its last task (their results are
    dropped), so every call has the same shapes and nothing is retraced."""
    if size == 1 or not hasattr(algorithm, "adapt_and_predict_many"):
        return [count_correct(algorithm, episode) for episode in chunk]
    padded = chunk + [chunk[-1]] * (size - len(chunk))
    stacked = EvalEpisode(*(tf.stack(field) for field in zip(*padded)))
    predictions = algorithm.adapt_and_predict_many(stacked)[:len(chunk)]
    correct = predictions == stacked.query_labels[:len(chunk)]
    return [int(c) for c in tf.reduce_sum(tf.cast(correct, tf.int32), axis=1).numpy()]


def evaluate(algorithm, episodes: Iterable[EvalEpisode], num_tasks: int,
             tasks_at_once: int = TASKS_AT_ONCE) -> np.ndarray:
    """Per-task correct counts over the first `num_tasks` episodes.

    Every task adapts from the same meta-weights and inner optimizer state and
    changes neither, so tasks are independent: they are adapted
    `tasks_at_once` at a time (`adapt_and_predict_many`; 1, or an algorithm
    without it, goes one by one), with the same results up to float rounding.

    Returns:
      int64 `[num_tasks]`; the original's accuracy is `sum / (num_tasks * N)`.
    """
    if tasks_at_once < 1:
        raise ValueError(f"--eval-tasks-at-once must be >= 1, got {tasks_at_once}")
    if hasattr(algorithm, "evaluate"):  # distribute.DistributedMetaStep: one task per replica
        return algorithm.evaluate(episodes, num_tasks)
    counts, chunk = [], []
    for episode, _ in zip(episodes, range(num_tasks)):
        chunk.append(episode)
        if len(chunk) == tasks_at_once:
            counts += _count_many(algorithm, chunk, tasks_at_once)
            chunk = []
    if chunk:
        counts += _count_many(algorithm, chunk, min(tasks_at_once, num_tasks))
    if len(counts) != num_tasks:
        raise ValueError(f"only {len(counts)} episodes were available, {num_tasks} asked for")
    return np.array(counts, np.int64)


def accuracy(counts: np.ndarray, num_classes: int) -> float:
    """Fraction of correct queries: one query per class per task."""
    return float(np.sum(counts)) / (len(counts) * num_classes)


def confidence_interval(values: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation confidence interval.

    Args:
      values: float `[num_tasks]` per-task results (e.g. accuracies in [0, 1]).
      z: the normal quantile; 1.96 gives a 95% interval (the MAML papers' convention).

    Returns:
      `(mean, half_width)`: the interval is `mean +- half_width`; the
      half-width is `z * std / sqrt(num_tasks)` with the sample standard
      deviation (0 for a single task).
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D array of per-task results, got shape {values.shape}")
    if values.size == 1:
        return float(values[0]), 0.0
    return float(values.mean()), float(z * values.std(ddof=1) / np.sqrt(values.size))
