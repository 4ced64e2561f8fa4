"""Builds a run from a `Config` and executes it: what `run_*.py` call."""

import os
from typing import Callable

import numpy as np
import tensorflow as tf

from supervised_reptile import (distribute, episodes, guard, miniimagenet, models, omniglot,
                                validate)
from supervised_reptile.algorithms import FOML, Reptile
from supervised_reptile.config import Config
from supervised_reptile.evaluate import accuracy, confidence_interval, evaluate
from supervised_reptile.maml import MAML, accuracy_per_step
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
    on_skip = validate.warn if config.skip_bad_images else None
    if config.dataset == "omniglot":
        train_pool, test_pool = omniglot.load(config.data_dir, config.train_characters, config.seed,
                                              on_skip)
        return {"train": episodes.Sampler(train_pool), "test": episodes.Sampler(test_pool)}
    return {split: episodes.Sampler(miniimagenet.load_split(os.path.join(config.data_dir, split),
                                                            on_skip))
            for split in miniimagenet.SPLITS}


def build_algorithm(config: Config) -> Reptile:
    """The meta-model, inner optimizer and algorithm the configuration names."""
    model = models.BUILDERS[config.dataset](config.classes, seed=config.seed)
    if config.maml:
        return MAML(model, config.maml_inner_lr, config.meta_lr,
                    first_order=config.maml_first_order, transductive=config.transductive)
    optimizer = make_optimizer("sgd" if config.sgd else "adam", config.learning_rate)
    cls = FOML if config.foml else Reptile
    return cls(model, optimizer, weight_decay=config.weight_decay,
               transductive=config.transductive)


def task_specs(config: Config) -> tuple[episodes.TaskSpec, episodes.TaskSpec]:
    """(training task spec, evaluation task spec)."""
    if config.maml:
        return maml_task_specs(config)
    train_spec = episodes.TaskSpec(config.classes, config.effective_train_shots,
                                   config.inner_batch, config.inner_iters, config.replacement,
                                   config.foml_tail if config.foml else None)
    eval_spec = episodes.TaskSpec(config.classes, config.shots, config.eval_batch,
                                  config.eval_iters, config.replacement)
    return train_spec, eval_spec


def maml_task_specs(config: Config) -> tuple[episodes.TaskSpec, episodes.TaskSpec]:
    """MAML's tasks: every inner step uses the whole support set; a training
    task's `tail_shots` extra images per class are its query set."""
    n, k = config.classes, config.effective_train_shots
    train_spec = episodes.TaskSpec(n, k + config.effective_query_shots, n * k,
                                   config.inner_iters + 1, tail_shots=config.effective_query_shots)
    eval_spec = episodes.TaskSpec(n, config.shots, n * config.shots, config.eval_iters)
    return train_spec, eval_spec


def _maml_protocol(algorithm: MAML, data, config: Config, title: str,
                   log_fn: Callable[[str], None]) -> float:
    """MAML's evaluation: accuracy after each inner step, mean +- 95% CI over tasks."""
    per_step = accuracy_per_step(algorithm, data, config.eval_samples)
    cells = ["%d: %.4f +- %.4f" % (s, *confidence_interval(per_step[:, s]))
             for s in range(per_step.shape[1])]
    log_fn(f"{title} accuracy after each inner step (95% CI over {len(per_step)} tasks): "
           + ", ".join(cells))
    return float(per_step[:, -1].mean())


def run(config: Config, log_fn: Callable[[str], None] = print) -> dict[str, float]:
    """Trains (unless `config.pretrained`) and evaluates; returns split -> accuracy."""
    validate.before_run(config)
    strategy = distribute.make_strategy(config.distribute, config.cpu_devices)
    chief = distribute.is_chief(strategy)
    if not chief:  # Workers compute; only the chief prints, writes and saves.
        log_fn = lambda line: None  # noqa: E731
    train_spec, eval_spec = task_specs(config)
    samplers = load_samplers(config)
    with strategy.scope():
        algorithm = build_algorithm(config)
    stepper = (algorithm if config.distribute == "none"
               else distribute.DistributedMetaStep(algorithm, strategy))
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
        monitored = ("train", "test")
        if chief:
            config.save(config.checkpoint)
            writers = {s: tf.summary.create_file_writer(os.path.join(config.checkpoint, s))
                       for s in monitored}
        else:
            writers = {s: tf.summary.create_noop_writer() for s in monitored}
        monitor = {s: iter(episodes.eval_dataset(samplers[s], eval_spec, config.seed,
                                                 episodes.MONITOR_STREAM + i))
                   for i, s in enumerate(monitored)}
        tasks = iter(episodes.train_dataset(samplers["train"], train_spec, config.seed,
                                            config.meta_batch))
        save = guard.guarded_save(lambda i: manager.save(checkpoint_number=i) if chief else None,
                                  config.checkpoint, algorithm.model.trainable_variables)
        try:
            with guard.stop_on_sigint() as stop:
                train(stepper, tasks, monitor, writers, save,
                      meta_iters=config.meta_iters, meta_step=config.meta_step,
                      meta_step_final=config.meta_step_final, eval_interval=config.eval_interval,
                      num_classes=config.classes, log_fn=log_fn, stop=stop)
        except distribute.PEER_ERRORS as err:
            if config.distribute == "none":
                raise
            raise distribute.worker_lost(err, manager.latest_checkpoint) from None
    log_fn("Evaluating...")
    results = {}
    for i, (split, sampler) in enumerate(samplers.items()):
        data = episodes.eval_dataset(sampler, eval_spec, config.seed,
                                     episodes.FINAL_EVAL_STREAM + i, config.eval_samples)
        if config.maml:
            results[split] = _maml_protocol(algorithm, data, config, SPLIT_TITLES[split], log_fn)
        else:
            counts = evaluate(stepper, data, config.eval_samples)
            results[split] = accuracy(counts, config.classes)
        log_fn(f"{SPLIT_TITLES[split]} accuracy: {np.float64(results[split])}")
    return results
