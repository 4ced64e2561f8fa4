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
    counts = []
    for episode, _ in zip(episodes, range(num_tasks)):
        counts.append(count_correct(algorithm, episode))
    if len(counts) != num_tasks:
        raise ValueError(f"only {len(counts)} episodes were available, {num_tasks} asked for")
    return np.array(counts, np.int64)


def accuracy(counts: np.ndarray, num_classes: int) -> float:
    """Fraction of correct queries: one query per class per task."""
    return float(np.sum(counts)) / (len(counts) * num_classes)
