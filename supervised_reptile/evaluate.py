"""Evaluation: adapt on many tasks and count correct queries (ORIGINAL.md 3.4, 7)."""

from typing import Iterable

import numpy as np
import tensorflow as tf

from supervised_reptile.episodes import EvalEpisode


def count_correct(algorithm, episode: EvalEpisode) -> int:
    """Correct queries (0..N) of one task after fine-tuning; changes no state."""
    predictions = algorithm.adapt_and_predict(episode)
    return int(tf.reduce_sum(tf.cast(predictions == episode.query_labels, tf.int32)))


def evaluate(algorithm, episodes: Iterable[EvalEpisode], num_tasks: int) -> np.ndarray:
    """Per-task correct counts over the first `num_tasks` episodes.

    Returns:
      int64 `[num_tasks]`; the original's accuracy is `sum / (num_tasks * N)`.
    """
    if hasattr(algorithm, "evaluate"):  # e.g. distribute.DistributedMetaStep
        return algorithm.evaluate(episodes, num_tasks)
    counts = []
    for episode, _ in zip(episodes, range(num_tasks)):
        counts.append(count_correct(algorithm, episode))
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
