"""TensorBoard output of a training run.

Layout under the run's checkpoint folder (TensorBoard's log directory):
  train/  `accuracy` (the original's monitoring accuracy), `inner_loss` (mean
          summed loss per inner step of the meta-batch) and `meta_step_size`
          every iteration; `iterations_per_second`, `tasks_per_second` (both
          over meta-steps only), `time/train_seconds` and `time/eval_seconds`
          (monitoring; both since the process started) at every monitoring
          evaluation; `episode`, an image of the first training task of the
          session (one row per class).
  test/   `accuracy`.
  .       the HParams plugin's session (every `Config` field) and its metrics
          `final_accuracy/<split>`, written after the final evaluation.

A resumed run writes the steps between its checkpoint and the kill again;
resume is exact, so the repeated points lie on the old ones (only the timing
scalars differ).
"""

import os

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from supervised_reptile.config import Config


def episode_grid(images: np.ndarray, num_classes: int, pad: int = 2) -> np.ndarray:
    """Tiles a class-grouped task into one image: a row per class.

    Args:
      images: float `[N * shots, H, W]` or `[N * shots, H, W, C]` in [0, 1].
      num_classes: N.

    Returns:
      float32 `[N * (H + pad) - pad, shots * (W + pad) - pad, C]`, the gaps
      mid-grey.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    shots = images.shape[0] // num_classes
    _, h, w, c = images.shape
    grid = np.full((num_classes * (h + pad) - pad, shots * (w + pad) - pad, c), 0.5, np.float32)
    for i, img in enumerate(images[:num_classes * shots]):
        r, s = divmod(i, shots)
        grid[r * (h + pad):r * (h + pad) + h, s * (w + pad):s * (w + pad) + w] = img
    return grid


def _hparam_value(value):
    """An HParams-plugin value (bool, int, float or str) for a config value."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


class Summaries:
    """The writers of a run and what they record.

    Args:
      directory: the run's checkpoint folder; None writes nothing (the
        non-chief workers of a distributed run).
      splits: monitored splits, one writer each (`<directory>/<split>`).
    """

    def __init__(self, directory: str | None, splits=("train", "test")):
        if directory is None:
            self.writers = {s: tf.summary.create_noop_writer() for s in splits}
            self.root = tf.summary.create_noop_writer()
        else:
            self.writers = {s: tf.summary.create_file_writer(os.path.join(directory, s))
                            for s in splits}
            self.root = tf.summary.create_file_writer(directory)
        self.train_seconds = 0.0
        self.eval_seconds = 0.0
        self._window = [0, 0, 0.0]  # iterations, tasks, meta-step seconds
        self._pending = []  # (iteration, inner loss or None, step size), not yet written

    @property
    def _train(self):
        return self.writers["train"]

    def hparams(self, config: Config, final_splits) -> None:
        """Declares the HParams experiment and this session's values."""
        values = {k: _hparam_value(v) for k, v in config.flat().items()}
        metrics = [hp.Metric(f"final_accuracy/{s}", display_name=f"{s} accuracy")
                   for s in final_splits]
        with self.root.as_default():
            hp.hparams_config(hparams=[hp.HParam(k) for k in values], metrics=metrics)
            hp.hparams(values, trial_id=os.path.basename(os.path.abspath(config.run.checkpoint)))
        self.root.flush()

    def episode(self, images, num_classes: int, step: int) -> None:
        """An image of one task (`images`: class-grouped `[N * shots, ...]`)."""
        with self._train.as_default():
            tf.summary.image("episode", episode_grid(images, num_classes)[None], step=step,
                             description="one training task: a row per class")
        self._train.flush()

    def train_step(self, iteration: int, stats: dict | None, step_size: float,
                   seconds: float, tasks: int) -> None:
        """After a meta-step: its inner loss and step size; accumulates timing.

        The points are kept and written at the next monitoring evaluation or
        flush: a summary write per iteration costs eager ops between meta-steps.
        """
        self.train_seconds += seconds
        self._window[0] += 1
        self._window[1] += tasks
        self._window[2] += seconds
        loss = stats.get("inner_loss") if stats else None
        self._pending.append((iteration, None if loss is None else float(loss), step_size))

    def _write_pending(self) -> None:
        with self._train.as_default():
            for iteration, loss, step_size in self._pending:
                if loss is not None:
                    tf.summary.scalar("inner_loss", loss, step=iteration)
                tf.summary.scalar("meta_step_size", step_size, step=iteration)
        self._pending = []

    def evaluated(self, iteration: int, accuracies: dict[str, float], seconds: float) -> None:
        """After a monitoring evaluation: each split's `accuracy`, the throughput
        since the last one, time totals."""
        for split, acc in accuracies.items():
            with self.writers[split].as_default():
                tf.summary.scalar("accuracy", acc, step=iteration)
            self.writers[split].flush()
        self.eval_seconds += seconds
        iters, tasks, spent = self._window
        self._write_pending()
        with self._train.as_default():
            if spent > 0:
                tf.summary.scalar("iterations_per_second", iters / spent, step=iteration)
                tf.summary.scalar("tasks_per_second", tasks / spent, step=iteration)
            tf.summary.scalar("time/train_seconds", self.train_seconds, step=iteration)
            tf.summary.scalar("time/eval_seconds", self.eval_seconds, step=iteration)
        self._window = [0, 0, 0.0]
        self._train.flush()

    def scalars(self, iteration: int, values: dict[str, float]) -> None:
        """Named scalars on the train writer (the sinusoid run's meta-step losses)."""
        with self._train.as_default():
            for name, value in values.items():
                tf.summary.scalar(name, value, step=iteration)

    def image(self, name: str, image, step: int) -> None:
        """A uint8 `[H, W, 3]` image on the train writer (the sinusoid run's fits)."""
        with self._train.as_default():
            tf.summary.image(name, image[None], step=step)
        self._train.flush()

    def final(self, accuracies: dict[str, float], step: int, seconds: float) -> None:
        """The final evaluation's accuracies (the HParams metrics) and its duration."""
        with self.root.as_default():
            for split, acc in accuracies.items():
                tf.summary.scalar(f"final_accuracy/{split}", acc, step=step)
            tf.summary.scalar("time/final_eval_seconds", seconds, step=step)
        self.flush()

    def flush(self) -> None:
        self._write_pending()
        for writer in list(self.writers.values()) + [self.root]:
            writer.flush()
