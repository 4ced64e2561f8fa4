"""A sinusoid regression run from a `Config`: what `run_sinusoid.py` calls.

Reptile, FOML (`--foml`) and MAML (`--maml`) train
on the same tasks with the same flags as the image runs; the loss is the mean
squared error. Regression has no accuracy, so the loop is this module's own
(the annealing of `--meta-step` is `train.meta_step_size`). The same
`--eval-samples` held-out tasks are scored before and after meta-training.

Writes to `--checkpoint`: `config.json`, `model.ckpt-<last>`, TensorBoard
scalars (the meta-step's losses) and image (`fits`) under `train/`, and
`sinusoid.png`.
"""

import os
from typing import Callable

import numpy as np
import tensorflow as tf

from supervised_reptile import config as config_lib, sinusoid
from supervised_reptile.build import build_algorithm, task_specs
from supervised_reptile.config import Config
from supervised_reptile.episodes import FINAL_EVAL_STREAM, TRAIN_STREAM
from supervised_reptile.evaluate import confidence_interval
from supervised_reptile.picture import Fit, draw_fits, save_png
from supervised_reptile.train import meta_step_size

#: Held-out tasks drawn in the picture.
PICTURE_TASKS = 4


def _predict(model, x) -> np.ndarray:
    return model(x, training=True).numpy()[:, 0]


def evaluate_mse(algorithm, held_out) -> tuple[np.ndarray, np.ndarray]:
    """Per-task query MSE before adaptation and after `--eval-iters` steps.

    Returns:
      Two float64 `[num_tasks]` arrays.
    """
    before, after = [], []
    for episode in held_out:
        truth = episode.query_labels.numpy()
        before.append(np.mean((_predict(algorithm.model, episode.query_images) - truth) ** 2))
        adapted = algorithm.adapt(episode)
        after.append(np.mean((_predict(adapted, episode.query_images) - truth) ** 2))
    return np.array(before, np.float64), np.array(after, np.float64)


def fits(algorithm, held_out, count: int = PICTURE_TASKS) -> list[Fit]:
    """The picture's curves for the first `count` held-out tasks."""
    out = []
    for episode in held_out.take(count):
        before = _predict(algorithm.model, episode.query_images)
        after = _predict(algorithm.adapt(episode), episode.query_images)
        out.append(Fit(episode.query_images.numpy()[:, 0], episode.query_labels.numpy(),
                       before, after, episode.support_images.numpy()[:, 0],
                       episode.support_labels.numpy()))
    return out


def _report(algorithm, held_out, when: str, steps: int, log_fn) -> float:
    before, after = evaluate_mse(algorithm, held_out)
    log_fn(f"Held-out MSE {when} meta-training (95%% CI over {len(after)} tasks): "
           "before adaptation %.4f +- %.4f, after %d steps %.4f +- %.4f"
           % (*confidence_interval(before), steps, *confidence_interval(after)))
    return float(after.mean())


def _train(algorithm, config: Config, writer, log_fn) -> None:
    train_spec, _ = task_specs(config)
    meta = config.meta
    tasks = iter(sinusoid.train_dataset(train_spec, config.run.seed, meta.meta_batch, TRAIN_STREAM))
    for i in range(meta.meta_iters):
        step = meta_step_size(i, meta.meta_iters, meta.meta_step, meta.meta_step_final)
        metrics = algorithm.meta_step(next(tasks), step)
        if i % config.eval.eval_interval == 0 or i == meta.meta_iters - 1:
            values = {k: float(v) for k, v in metrics.items()}
            with writer.as_default():
                for name, value in values.items():
                    tf.summary.scalar(name, value, step=i)
            log_fn(f"batch {i}: " + " ".join(f"{k}={v:f}" for k, v in values.items()))


def run(config: Config, log_fn: Callable[[str], None] = print) -> dict[str, float]:
    """Scores the held-out tasks, meta-trains, scores them again, draws them.

    Returns:
      `{"mse_before_training", "mse_after_training"}`: mean post-adaptation
      query MSE over the held-out tasks.
    """
    _, eval_spec = task_specs(config)
    held_out = sinusoid.eval_dataset(eval_spec, config.run.seed, FINAL_EVAL_STREAM,
                                     config.eval.eval_samples)
    algorithm = build_algorithm(config)
    config_lib.save(config, config.run.checkpoint)
    writer = tf.summary.create_file_writer(os.path.join(config.run.checkpoint, "train"))
    results = {"mse_before_training": _report(algorithm, held_out, "before",
                                              config.eval.eval_iters, log_fn)}
    log_fn("Training...")
    _train(algorithm, config, writer, log_fn)
    log_fn("Evaluating...")
    results["mse_after_training"] = _report(algorithm, held_out, "after", config.eval.eval_iters,
                                            log_fn)
    checkpoint = tf.train.Checkpoint(model=algorithm.model, optimizer=algorithm.optimizer)
    tf.train.CheckpointManager(checkpoint, config.run.checkpoint, max_to_keep=1,
                               checkpoint_name="model.ckpt").save(config.meta.meta_iters - 1)
    image = draw_fits(fits(algorithm, held_out))
    path = os.path.join(config.run.checkpoint, "sinusoid.png")
    save_png(image, path)
    with writer.as_default():
        tf.summary.image("fits", image[None], step=config.meta.meta_iters)
    writer.flush()
    log_fn(f"Wrote {path}")
    return results
