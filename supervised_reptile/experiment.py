"""Builds a run from a `Config` and executes it: what `run_*.py` call."""

import os
import sys
import time
from typing import Callable

import numpy as np

from supervised_reptile import (checkpoints, distribute, episodes, export, guard, models,
                                progress, report, validate)
from supervised_reptile.data import miniimagenet, omniglot
from supervised_reptile.algorithms import FOML, MAML, Algorithm, Reptile
from supervised_reptile.config import Config
from supervised_reptile.evaluate import evaluate
from supervised_reptile.optimizers import make_optimizer
from supervised_reptile.progress import Progress
from supervised_reptile.summaries import Summaries
from supervised_reptile.train import train

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


def build_algorithm(config: Config) -> Algorithm:
    """The meta-model, inner optimizer and algorithm the configuration names."""
    model = models.BUILDERS[config.dataset](config.classes, seed=config.seed)
    schedule = "at-once" if config.parallel_tasks else (config.inner_state or "shared")
    if config.maml:
        return MAML(model, config.maml_inner_lr, config.meta_lr,
                    first_order=config.maml_first_order, transductive=config.transductive,
                    schedule=schedule)
    optimizer = make_optimizer("sgd" if config.sgd else "adam", config.learning_rate)
    cls = FOML if config.foml else Reptile
    return cls(model, optimizer, weight_decay=config.weight_decay,
               transductive=config.transductive, schedule=schedule)


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


def run(config: Config, log_fn: Callable[[str], None] = print) -> dict[str, float]:
    """Trains (unless `config.pretrained`) and evaluates; returns split -> accuracy.

    Training resumes from the latest checkpoint in `config.checkpoint` when
    there is one (`checkpoints.prepare`); `config.restart` starts over. With
    `config.distribute`, every worker runs this; only the chief prints,
    writes checkpoints, TensorBoard events, results and exports.
    """
    validate.before_run(config)  # also --checkpoint-interval and the --distribute options
    report.check_path(config.eval_results)
    strategy = distribute.make_strategy(config.distribute, config.cpu_devices)
    chief = distribute.is_chief(strategy)
    if not chief:
        log_fn = _silent
    train_spec, eval_spec = task_specs(config)
    samplers = load_samplers(config)
    with strategy.scope():
        algorithm = build_algorithm(config)
    stepper = (algorithm if config.distribute == "none"
               else distribute.DistributedLearner(algorithm, strategy))
    run_checkpoint = checkpoints.RunCheckpoint(config.checkpoint, algorithm.model,
                                               algorithm.optimizer)
    summaries = None
    if config.pretrained:
        log_fn("Restoring from checkpoint...")
        if run_checkpoint.latest is None:
            raise FileNotFoundError(f"--pretrained: no checkpoint in {config.checkpoint!r}")
        checkpoints.check_compatible(config.checkpoint, config, checkpoints.STRUCTURE_FIELDS)
        run_checkpoint.restore(log_fn)
    else:
        # Only the chief deletes a previous run; the other workers start at 0 too.
        start = (checkpoints.prepare(run_checkpoint, config, log_fn)
                 if chief or not config.restart else 0)
        log_fn("Training...")
        if chief:
            checkpoints.save_config(config, config.checkpoint)
        summaries = Summaries(config.checkpoint if chief else None)
        _train(config, stepper, samplers, (train_spec, eval_spec), run_checkpoint, summaries,
               start, log_fn, chief)
    log_fn("Evaluating...")
    began = time.perf_counter()
    results = _report(config, _final_evaluation(config, stepper, samplers, eval_spec),
                      log_fn if chief else None)
    if summaries is not None:
        summaries.final(results, config.meta_iters, time.perf_counter() - began)
    if config.export and chief:
        export.export(algorithm, config, config.export)
        log_fn(f"Exported a SavedModel to {config.export}")
    return results


def _silent(line: str) -> None:
    del line


def _train(config, stepper, samplers, specs, run_checkpoint, summaries, start, log_fn, chief):
    """The meta-training loop from iteration `start`, with monitoring and summaries."""
    train_spec, eval_spec = specs
    monitored = ("train", "test")
    # Monitoring task `i` is the one evaluated after iteration `i`, so a
    # resumed run monitors the same tasks as an uninterrupted one.
    first = -(-start // config.eval_interval) * config.eval_interval
    monitor = {s: iter(episodes.eval_dataset(samplers[s], eval_spec, config.seed,
                                             episodes.MONITOR_STREAM + i, start=first,
                                             step=config.eval_interval))
               for i, s in enumerate(monitored)}
    tasks = iter(episodes.train_dataset(samplers["train"], train_spec, config.seed,
                                        config.meta_batch, start_iteration=start))
    summaries.hparams(config, list(samplers))
    if start < config.meta_iters:
        first_task = next(iter(episodes.train_dataset(samplers["train"], train_spec,
                                                      config.seed, 1, start_iteration=start)))
        summaries.episode(first_task.images[0].numpy(), config.classes, start)
    bar = Progress("train", config.meta_iters, start=start,
                   enabled=chief and progress.wanted(config.progress, sys.stderr))
    save = guard.guarded_save(run_checkpoint.save if chief else _silent, config.checkpoint,
                              stepper.model.trainable_variables)
    try:
        with guard.stop_on_sigint() as stop:
            train(stepper, tasks, monitor, summaries.writers, save,
                  meta_iters=config.meta_iters, meta_step=config.meta_step,
                  meta_step_final=config.meta_step_final, eval_interval=config.eval_interval,
                  num_classes=config.classes, start_iteration=start, log_fn=bar.wrap(log_fn),
                  checkpoint_interval=config.checkpoint_interval, recorder=summaries,
                  progress=bar, stop=stop)
    except distribute.PEER_ERRORS as err:
        if config.distribute == "none":
            raise
        raise distribute.worker_lost(err, run_checkpoint.latest) from None
    finally:
        bar.close()


def _final_datasets(config, samplers, eval_spec) -> dict:
    """Split -> the final evaluation's `config.eval_samples` tasks."""
    return {split: episodes.eval_dataset(sampler, eval_spec, config.seed,
                                         episodes.FINAL_EVAL_STREAM + i, config.eval_samples)
            for i, (split, sampler) in enumerate(samplers.items())}


def _final_evaluation(config, algorithm, samplers, eval_spec) -> dict[str, np.ndarray]:
    """Split -> per-task correct counts over `config.eval_samples` tasks."""
    counts = {}
    for split, data in _final_datasets(config, samplers, eval_spec).items():
        bar = Progress(f"eval {split}", config.eval_samples,
                       enabled=progress.wanted(config.progress, sys.stderr))
        # MAML's protocol scores every inner step.
        counts[split] = evaluate(algorithm, data, config.eval_samples,
                                 config.eval_tasks_at_once, every_step=config.maml,
                                 on_task=bar.update)
        bar.close()
    return counts


def _report(config, counts, log_fn) -> dict[str, float]:
    """Prints the original's accuracy lines, then the CI lines; writes `--eval-results`."""
    if log_fn is None:  # not the chief
        log_fn = _silent
    results = report.print_accuracies(counts, config.classes, log_fn)
    if config.eval_results and log_fn is not _silent:
        report.write(config.eval_results, counts, config.classes)
    return results
