"""Evaluation: adapt on many tasks, then count correct queries or measure errors.

One path for every meta-learner and every use (the final evaluation, the
monitoring evaluation during training, sinusoid regression): tasks are
stacked `tasks_at_once` at a time and adapted through
`MetaLearner.adapt_and_predict_many` (1 goes task by task through
`adapt_and_predict`; the results are equal up to float rounding). Every task
adapts from the same meta-weights and inner optimizer state and changes
neither, so the tasks are independent.

A score has one column per reported step: with `every_step`, column `s` is
after `s` inner steps (column 0 before adaptation: MAML's protocol, and the
sinusoid's before/after picture); otherwise a single column, after the last
step.
"""

from typing import Callable, Iterable, Sequence

import numpy as np
import tensorflow as tf

from supervised_reptile.algorithms.base import MetaLearner
from supervised_reptile.episodes import EvalEpisode

#: `(outputs [tasks, R, Q, C], targets [tasks, Q]) -> [tasks, R]` scores.
Score = Callable[[np.ndarray, np.ndarray], np.ndarray]


def correct_counts(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Correct queries per task and step: int64 `[tasks, R]` from logits `[tasks, R, Q, N]`."""
    predictions = np.argmax(outputs, axis=-1)
    return np.sum(predictions == labels[:, None, :], axis=-1).astype(np.int64)


def squared_errors(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean squared error of the queries, float64 `[tasks, R]` from outputs `[tasks, R, Q, 1]`."""
    return np.mean((outputs[..., 0].astype(np.float64) - targets[:, None, :]) ** 2, axis=-1)


def outputs_of(learner: MetaLearner, chunk: Sequence[EvalEpisode], every_step: bool,
               size: int) -> np.ndarray:
    """The learner's query outputs `[len(chunk), R, Q, C]` for a list of tasks.

    With `size` > 1 the chunk is stacked, padded with copies of its last task
    to `size` tasks (their results are dropped) so that every call has the
    same shapes and nothing is traced again.
    """
    if size == 1:
        return np.stack([learner.adapt_and_predict(e, every_step).numpy() for e in chunk])
    padded = list(chunk) + [chunk[-1]] * (size - len(chunk))
    stacked = EvalEpisode(*(tf.stack(field) for field in zip(*padded)))
    return learner.adapt_and_predict_many(stacked, every_step).numpy()[:len(chunk)]


def score_chunk(learner: MetaLearner, chunk: Sequence[EvalEpisode], score: Score = correct_counts,
                every_step: bool = False, size: int | None = None) -> np.ndarray:
    """`score` of a list of tasks adapted together (`size`: see `outputs_of`)."""
    outputs = outputs_of(learner, chunk, every_step, size or len(chunk))
    return score(outputs, np.stack([e.query_labels.numpy() for e in chunk]))


def evaluate(learner: MetaLearner, episodes: Iterable[EvalEpisode], num_tasks: int,
             tasks_at_once: int = 16, score: Score = correct_counts, every_step: bool = False,
             on_task: Callable[[int], None] | None = None) -> np.ndarray:
    """Scores of the first `num_tasks` episodes, `tasks_at_once` at a time.

    Args:
      on_task: called with the number of tasks done so far (a progress bar).

    Returns:
      `[num_tasks, R]` (see the module docstring): int64 correct counts by
      default; the original's accuracy is `counts[:, -1].sum() / (num_tasks * N)`.

    Raises:
      ValueError: `tasks_at_once` < 1, or fewer than `num_tasks` episodes.
    """
    if tasks_at_once < 1:
        raise ValueError(f"tasks_at_once must be >= 1, got {tasks_at_once}")
    size = min(tasks_at_once, num_tasks)
    rows, chunk = [], []
    for episode, _ in zip(episodes, range(num_tasks)):
        chunk.append(episode)
        if len(chunk) == size:
            rows.append(score_chunk(learner, chunk, score, every_step, size))
            chunk = []
            if on_task:
                on_task(sum(map(len, rows)))
    if chunk:
        rows.append(score_chunk(learner, chunk, score, every_step, size))
        if on_task:
            on_task(sum(map(len, rows)))
    done = sum(map(len, rows))
    if done != num_tasks:
        raise ValueError(f"only {done} episodes were available, {num_tasks} asked for")
    return np.concatenate(rows)


def accuracy(counts: np.ndarray, num_classes: int) -> float:
    """Fraction of correct queries (one query per class per task), after the last step.

    Args:
      counts: `[num_tasks]` or `[num_tasks, R]` correct counts.
    """
    final = np.asarray(counts).reshape(len(counts), -1)[:, -1]
    return float(np.sum(final)) / (len(final) * num_classes)


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
