"""A sinusoid regression run from a `Config`: what `run_sinusoid.py` calls.

Reptile, FOML, MAML and the MAML paper's two baselines ("pretrained" and
"oracle", `algorithms.Pretrained`) train on the same tasks through the same
build step and are scored by the same evaluation code as the image runs,
with the mean squared error as the score. Regression has no accuracy to
monitor, so the training loop is this module's own (the annealing of the
meta-step is `train.meta_step_size`). The same held-out tasks are scored
before and after meta-training.

Writes to the run's checkpoint folder: `config.json`, `model.ckpt-<last>`,
TensorBoard scalars (the meta-step's losses) and image (`fits`) under
`train/`, and `sinusoid.png` (with the fits of the `compare` runs, if any).
"""

import os
from typing import Callable

import numpy as np
import tensorflow as tf

from supervised_reptile import config as config_lib, guard, report, sinusoid
from supervised_reptile.algorithms import Algorithm
from supervised_reptile.build import build_algorithm, configure_threads, task_specs, tasks_at_once
from supervised_reptile.config import Config
from supervised_reptile.episodes import FINAL_EVAL_STREAM, TRAIN_STREAM
from supervised_reptile.evaluate import evaluate, outputs_of, squared_errors
from supervised_reptile.picture import Fit, draw_fits, save_png
from supervised_reptile.summaries import Summaries
from supervised_reptile.train import meta_step_size

#: Held-out tasks drawn in the picture.
PICTURE_TASKS = 4
CHECKPOINT_NAME = "model.ckpt"


def _oracle(config: Config) -> bool:
    return config.meta.algorithm == "oracle"


def held_out_tasks(config: Config) -> tf.data.Dataset:
    """The run's held-out evaluation tasks (the same for every algorithm and seed)."""
    _, eval_spec = task_specs(config)
    return sinusoid.eval_dataset(eval_spec, config.run.seed, FINAL_EVAL_STREAM,
                                 config.eval.eval_samples, _oracle(config))


def evaluate_mse(algorithm: Algorithm, held_out: tf.data.Dataset,
                 tasks_at_once: int = 16) -> np.ndarray:
    """Per-task query MSE before adaptation and after each inner step.

    Returns:
      float64 `[num_tasks, eval_iters + 1]`.
    """
    return evaluate(algorithm, held_out, int(held_out.cardinality()), tasks_at_once,
                    score=squared_errors, every_step=True)


def _curves(algorithm: Algorithm, episodes: list) -> np.ndarray:
    """`[tasks, steps + 1, points]` predictions on the tasks' query grids."""
    return outputs_of(algorithm, episodes, every_step=True, size=len(episodes))[..., 0]


def _amplitude_phase(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The task's `(A, phase)`, recovered from its true curve.

    The episode carries only points; its query targets are exactly
    `A sin(x - phase) = A cos(phase) sin(x) - A sin(phase) cos(x)` on an even
    grid, so least squares on `(sin x, cos x)` gives them back to float32
    rounding (A > 0 and phase in [0, pi] make the answer unique).
    """
    x, y = x.astype(np.float64), y.astype(np.float64)
    (a, b), *_ = np.linalg.lstsq(np.stack([np.sin(x), np.cos(x)], axis=1), y, rcond=None)
    return float(np.hypot(a, b)), float(np.arctan2(-b, a))


def fits(algorithm: Algorithm, held_out: tf.data.Dataset, others: dict | None = None,
         count: int = PICTURE_TASKS) -> list[Fit]:
    """The picture's curves for the first `count` held-out tasks, each with its
    amplitude and phase and the query MSE (`squared_errors`, as in
    `evaluate_mse`) of the drawn curves before and after the inner steps.

    Args:
      others: label -> `[count, points]` adapted predictions of other runs.
    """
    episodes = list(held_out.take(count))
    curves = _curves(algorithm, episodes)
    targets = np.stack([e.query_labels.numpy() for e in episodes])
    errors = squared_errors(curves[..., None], targets)
    out = []
    for t, (e, c) in enumerate(zip(episodes, curves)):
        grid = e.query_images.numpy()[:, 0]
        amplitude, phase = _amplitude_phase(grid, targets[t])
        out.append(Fit(grid, targets[t], c[0], c[-1], e.support_images.numpy()[:, 0],
                       e.support_labels.numpy(),
                       tuple((label, other[t]) for label, other in (others or {}).items()),
                       amplitude=amplitude, phase=phase, mse_before=float(errors[t, 0]),
                       mse_after=float(errors[t, -1]), steps=len(c) - 1))
    return out


def compared_fits(directories, seed: int, eval_samples: int,
                  count: int = PICTURE_TASKS) -> dict[str, np.ndarray]:
    """Label -> adapted predictions `[count, points]` of earlier runs, restored
    from their folders, on this run's held-out tasks (same seed and count)."""
    out = {}
    for directory in directories:
        saved = config_lib.read(directory)
        if saved is None:
            raise FileNotFoundError(f"no {config_lib.CONFIG_FILE} in {directory!r}: not a "
                                    "sinusoid run's folder")
        config = config_lib.from_dict(saved, seed=seed, eval_samples=eval_samples)
        algorithm = build_algorithm(config)
        path = tf.train.latest_checkpoint(directory)
        if path is None:
            raise FileNotFoundError(f"no checkpoint in {directory!r}")
        tf.train.Checkpoint(model=algorithm.model, optimizer=algorithm.optimizer).restore(
            path).assert_existing_objects_matched()
        episodes = list(held_out_tasks(config).take(count))
        curves = _curves(algorithm, episodes)
        label = (f"{config.meta.algorithm} ({os.path.basename(os.path.normpath(directory))}), "
                 f"after {curves.shape[1] - 1} steps")
        out[label] = curves[:, -1]
    return out


def _report(algorithm, held_out, when: str, tasks_at_once: int, log_fn) -> float:
    errors = evaluate_mse(algorithm, held_out, tasks_at_once)
    log_fn(report.mse_line(when, errors))
    return float(errors[:, -1].mean())


def _train(algorithm, config: Config, summaries: Summaries, log_fn) -> None:
    train_spec, _ = task_specs(config)
    meta = config.meta
    tasks = iter(sinusoid.train_dataset(train_spec, config.run.seed, meta.meta_batch,
                                        TRAIN_STREAM, _oracle(config)))
    for i in range(meta.meta_iters):
        step = meta_step_size(i, meta.meta_iters, meta.meta_step, meta.meta_step_final)
        metrics = algorithm.meta_step(next(tasks), step)
        if i % config.eval.eval_interval == 0 or i == meta.meta_iters - 1:
            values = {k: float(v) for k, v in metrics.items() if k != guard.WEIGHTS_FINITE}
            summaries.scalars(i, values)
            log_fn(f"batch {i}: " + " ".join(f"{k}={v:f}" for k, v in values.items()))


def run(config: Config, log_fn: Callable[[str], None] = print) -> dict[str, float]:
    """Scores the held-out tasks, meta-trains, scores them again, draws them.

    Returns:
      `{"mse_before_training", "mse_after_training"}`: mean post-adaptation
      query MSE over the held-out tasks.
    """
    configure_threads(config, log_fn)
    held_out = held_out_tasks(config)
    algorithm = build_algorithm(config)
    run_dir, at_once = config.run.checkpoint, tasks_at_once(config)
    config_lib.save(config, run_dir)
    summaries = Summaries(run_dir, splits=("train",))
    results = {"mse_before_training": _report(algorithm, held_out, "before", at_once, log_fn)}
    log_fn("Training...")
    _train(algorithm, config, summaries, log_fn)
    log_fn("Evaluating...")
    results["mse_after_training"] = _report(algorithm, held_out, "after", at_once, log_fn)
    checkpoint = tf.train.Checkpoint(model=algorithm.model, optimizer=algorithm.optimizer)
    tf.train.CheckpointManager(checkpoint, run_dir, max_to_keep=1,
                               checkpoint_name=CHECKPOINT_NAME).save(config.meta.meta_iters - 1)
    others = compared_fits(config.run.compare, config.run.seed, config.eval.eval_samples)
    image = draw_fits(fits(algorithm, held_out, others))
    path = os.path.join(run_dir, "sinusoid.png")
    save_png(image, path)
    summaries.image("fits", image, config.meta.meta_iters)
    log_fn(f"Wrote {path}")
    return results
