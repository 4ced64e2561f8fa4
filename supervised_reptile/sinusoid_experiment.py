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

from supervised_reptile import report, sinusoid
from supervised_reptile.algorithms import FOML, MAML, Algorithm, Reptile
from supervised_reptile.config import Config
from supervised_reptile.episodes import FINAL_EVAL_STREAM, TRAIN_STREAM
from supervised_reptile.evaluate import evaluate, squared_errors
from supervised_reptile.experiment import task_specs
from supervised_reptile.optimizers import make_optimizer
from supervised_reptile.picture import Fit, draw_fits, save_png
from supervised_reptile.train import meta_step_size

#: Held-out tasks drawn in the picture.
PICTURE_TASKS = 4


def build_algorithm(config: Config) -> Algorithm:
    """The regressor and the algorithm the configuration names (MSE loss)."""
    model = sinusoid.build_sinusoid_model(config.seed)
    if config.maml:
        return MAML(model, config.maml_inner_lr, config.meta_lr,
                    first_order=config.maml_first_order, transductive=True, loss_fn=sinusoid.mse)
    optimizer = make_optimizer("sgd" if config.sgd else "adam", config.learning_rate)
    cls = FOML if config.foml else Reptile
    # No batch norm: transductive prediction is the plain forward pass.
    return cls(model, optimizer, weight_decay=config.weight_decay, transductive=True,
               loss_fn=sinusoid.mse)


def _predict(model, x) -> np.ndarray:
    return model(x, training=True).numpy()[:, 0]


def evaluate_mse(algorithm, held_out) -> np.ndarray:
    """Per-task query MSE before adaptation and after each inner step.

    Returns:
      float64 `[num_tasks, eval_iters + 1]`.
    """
    num_tasks = int(held_out.cardinality())
    return evaluate(algorithm, held_out, num_tasks, tasks_at_once=1, score=squared_errors,
                    every_step=True)


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


def _report(algorithm, held_out, when: str, log_fn) -> float:
    errors = evaluate_mse(algorithm, held_out)
    log_fn(report.mse_line(when, errors))
    return float(errors[:, -1].mean())


def _train(algorithm, config: Config, writer, log_fn) -> None:
    train_spec, _ = task_specs(config)
    tasks = iter(sinusoid.train_dataset(train_spec, config.seed, config.meta_batch, TRAIN_STREAM))
    for i in range(config.meta_iters):
        step = meta_step_size(i, config.meta_iters, config.meta_step, config.meta_step_final)
        metrics = algorithm.meta_step(next(tasks), step)
        if i % config.eval_interval == 0 or i == config.meta_iters - 1:
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
    held_out = sinusoid.eval_dataset(eval_spec, config.seed, FINAL_EVAL_STREAM,
                                     config.eval_samples)
    algorithm = build_algorithm(config)
    config.save(config.checkpoint)
    writer = tf.summary.create_file_writer(os.path.join(config.checkpoint, "train"))
    results = {"mse_before_training": _report(algorithm, held_out, "before", log_fn)}
    log_fn("Training...")
    _train(algorithm, config, writer, log_fn)
    log_fn("Evaluating...")
    results["mse_after_training"] = _report(algorithm, held_out, "after", log_fn)
    checkpoint = tf.train.Checkpoint(model=algorithm.model, optimizer=algorithm.optimizer)
    tf.train.CheckpointManager(checkpoint, config.checkpoint, max_to_keep=1,
                               checkpoint_name="model.ckpt").save(config.meta_iters - 1)
    image = draw_fits(fits(algorithm, held_out))
    path = os.path.join(config.checkpoint, "sinusoid.png")
    save_png(image, path)
    with writer.as_default():
        tf.summary.image("fits", image[None], step=config.meta_iters)
    writer.flush()
    log_fn(f"Wrote {path}")
    return results
