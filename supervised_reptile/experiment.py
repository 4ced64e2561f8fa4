"""Builds a run from a `Config` and executes it: what `run_*.py` call."""

import os
from typing import Callable

import numpy as np
import tensorflow as tf

from supervised_reptile import episodes, miniimagenet, models, omniglot
from supervised_reptile.algorithms import FOML, Reptile
from supervised_reptile.config import Config
from supervised_reptile.evaluate import accuracy, evaluate
from supervised_reptile.optimizers import make_optimizer
from supervised_reptile.train import train

#: Printed split names, in the original's order.
SPLIT_TITLES = {"train": "Train", "val": "Validation", "test": "Test"}


def load_samplers(config: Config) -> dict[str, episodes.Sampler]:
    """Split name -> `episodes.Sampler` for the configured dataset.

    Splits are decoded and moved into TensorFlow one at a time, so at most one
    split exists twice (NumPy and TensorFlow) at any moment: for Mini-ImageNet
    the images take about 1.3 GB once loaded (a full-size synthetic
    measurement peaked at 2.4 GB for the whole process, TensorFlow included).
    """
    if config.dataset == "omniglot":
        train_pool, test_pool = omniglot.load(config.data_dir, config.train_characters, config.seed)
        return {"train": episodes.Sampler(train_pool), "test": episodes.Sampler(test_pool)}
    return {split: episodes.Sampler(miniimagenet.load_split(os.path.join(config.data_dir, split)))
            for split in miniimagenet.SPLITS}


def build_algorithm(config: Config) -> Reptile:
    """The meta-model, inner optimizer and algorithm the configuration names."""
    model = models.BUILDERS[config.dataset](config.classes, seed=config.seed)
    optimizer = make_optimizer("sgd" if config.sgd else "adam", config.learning_rate)
    cls = FOML if config.foml else Reptile
    return cls(model, optimizer, weight_decay=config.weight_decay,
               transductive=config.transductive, inner_state=config.inner_state,
               parallel_tasks=config.parallel_tasks)


def task_specs(config: Config) -> tuple[episodes.TaskSpec, episodes.TaskSpec]:
    """(training task spec, evaluation task spec)."""
    train_spec = episodes.TaskSpec(config.classes, config.effective_train_shots,
                                   config.inner_batch, config.inner_iters, config.replacement,
                                   config.foml_tail if config.foml else None)
    eval_spec = episodes.TaskSpec(config.classes, config.shots, config.eval_batch,
                                  config.eval_iters, config.replacement)
    return train_spec, eval_spec


def run(config: Config, log_fn: Callable[[str], None] = print) -> dict[str, float]:
    """Trains (unless `config.pretrained`) and evaluates; returns split -> accuracy."""
    train_spec, eval_spec = task_specs(config)
    samplers = load_samplers(config)
    algorithm = build_algorithm(config)
    checkpoint = tf.train.Checkpoint(model=algorithm.model, optimizer=algorithm.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, config.checkpoint, max_to_keep=5,
                                         checkpoint_name="model.ckpt")
    if config.pretrained:
        log_fn("Restoring from checkpoint...")
        if manager.latest_checkpoint is None:
            raise FileNotFoundError(f"--pretrained: no checkpoint in {config.checkpoint!r}")
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    else:
        log_fn("Training...")
        config.save(config.checkpoint)
        monitored = ("train", "test")
        monitor = {s: iter(episodes.eval_dataset(samplers[s], eval_spec, config.seed,
                                                 episodes.MONITOR_STREAM + i))
                   for i, s in enumerate(monitored)}
        writers = {s: tf.summary.create_file_writer(os.path.join(config.checkpoint, s))
                   for s in monitored}
        tasks = iter(episodes.train_dataset(samplers["train"], train_spec, config.seed,
                                            config.meta_batch))
        train(algorithm, tasks, monitor, writers, lambda i: manager.save(checkpoint_number=i),
              meta_iters=config.meta_iters, meta_step=config.meta_step,
              meta_step_final=config.meta_step_final, eval_interval=config.eval_interval,
              num_classes=config.classes, log_fn=log_fn)
    log_fn("Evaluating...")
    results = {}
    for i, (split, sampler) in enumerate(samplers.items()):
        data = episodes.eval_dataset(sampler, eval_spec, config.seed,
                                     episodes.FINAL_EVAL_STREAM + i, config.eval_samples)
        counts = evaluate(algorithm, data, config.eval_samples, config.eval_tasks_at_once)
        results[split] = accuracy(counts, config.classes)
        log_fn(f"{SPLIT_TITLES[split]} accuracy: {np.float64(results[split])}")
    return results
