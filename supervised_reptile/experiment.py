"""A training run from a `Config`: preflight, build, resume, train, evaluate, report, export."""

import contextlib
import itertools
import sys
import time
from typing import Callable

import numpy as np

from supervised_reptile import (checkpoints, config as config_lib, distribute, episodes,
                                guard, lock, progress, report, saved_model, validate)
from supervised_reptile.build import (build_algorithm, configure_threads, load_samplers,
                                      resolve_data, task_specs, tasks_at_once, write_split)
from supervised_reptile.config import Config
from supervised_reptile.evaluate import evaluate
from supervised_reptile.progress import Progress
from supervised_reptile.summaries import Summaries
from supervised_reptile.train import train

def run(config: Config, log_fn: Callable[[str], None] = print) -> dict[str, float]:
    """Trains (unless `config.run.pretrained`) and evaluates; returns split -> accuracy.

    Training resumes from the latest checkpoint in `config.run.checkpoint`
    when there is one (`checkpoints.prepare`); `config.run.restart` starts
    over. With `config.distribution`, every worker runs this; only the chief
    prints, writes checkpoints, TensorBoard events, results and exports, and
    holds the folder's lock (`lock.hold`; `lock.FolderInUse` if another run
    holds it). A finished run (a checkpoint at `meta_iters` or later) is
    neither trained nor evaluated again: one line says so and `{}` is returned.
    """
    validate.before_run(config)
    config = resolve_data(config)
    configure_threads(config, log_fn)
    run_cfg, dist = config.run, config.distribution
    strategy = distribute.make_strategy(dist.distribute, dist.cpu_devices)
    chief = distribute.is_chief(strategy)
    if not chief:
        log_fn = _silent
    # Only the chief writes to the folder; `pretrained` only reads it (beside a training run).
    held = (lock.hold(run_cfg.checkpoint) if chief and not run_cfg.pretrained
            else contextlib.nullcontext())
    with held:
        done = _finished(config)
        if done is not None:
            log_fn(f"{run_cfg.checkpoint} already finished {done} meta-iterations; nothing to "
                   "train. Pass `pretrained` to evaluate it again, `meta_iters` N (more than "
                   f"{done}) to train further, or `restart` to start over.")
            return {}
        return _train_and_evaluate(config, strategy, chief, log_fn)


def _finished(config: Config) -> int | None:
    """The meta-iterations of a finished run in the checkpoint folder, or None
    (checked against `config` first, before any data is loaded)."""
    if config.run.pretrained or config.run.restart:
        return None
    checkpoints.check_compatible(config.run.checkpoint, config)
    return checkpoints.finished(config.run.checkpoint, config.meta.meta_iters)


def _train_and_evaluate(config: Config, strategy, chief: bool,
                        log_fn: Callable[[str], None]) -> dict[str, float]:
    """`run` after the preflight: build, resume, train, evaluate, report, export."""
    run_cfg, dist = config.run, config.distribution
    train_spec, eval_spec = task_specs(config)
    samplers = load_samplers(config, log_fn)
    with strategy.scope():
        algorithm = build_algorithm(config)
    stepper = (algorithm if dist.distribute == "none"
               else distribute.DistributedLearner(algorithm, strategy))
    run_checkpoint = checkpoints.RunCheckpoint(run_cfg.checkpoint, algorithm.model,
                                               algorithm.optimizer)
    summaries = None
    if run_cfg.pretrained:
        log_fn("Restoring from checkpoint...")
        checkpoints.check_compatible(run_cfg.checkpoint, config, checkpoints.STRUCTURE_FIELDS)
        run_checkpoint.restore(log_fn)  # FileNotFoundError without a checkpoint
    else:
        # Only the chief deletes a previous run; the other workers start at 0 too.
        start = (checkpoints.prepare(run_checkpoint, config, log_fn)
                 if chief or not run_cfg.restart else 0)
        log_fn("Training...")
        if chief:
            config_lib.save(config, run_cfg.checkpoint)
            write_split(run_cfg.checkpoint, samplers, config.data.data_dir)
        summaries = Summaries(run_cfg.checkpoint if chief else None)
        _train(config, stepper, samplers, (train_spec, eval_spec), run_checkpoint, summaries,
               start, log_fn, chief)
    log_fn("Evaluating...")
    began = time.perf_counter()
    results = _report(config, _final_evaluation(config, stepper, samplers, eval_spec),
                      log_fn if chief else _silent)
    if summaries is not None:
        summaries.final(results, config.meta.meta_iters, time.perf_counter() - began)
    if run_cfg.export and chief:
        saved_model.export(algorithm, config, run_cfg.export)
        log_fn(f"Exported a SavedModel to {run_cfg.export}")
    return results


def _silent(line: str) -> None:
    del line


def _train(config, stepper, samplers, specs, run_checkpoint, summaries, start, log_fn, chief):
    """The meta-training loop from iteration `start`, with monitoring and summaries."""
    train_spec, eval_spec = specs
    monitored = ("train", "test")
    # Monitoring task `i` is the one evaluated after iteration `i`, so a
    # resumed run monitors the same tasks as an uninterrupted one.
    first = -(-start // config.eval.eval_interval) * config.eval.eval_interval
    monitor = {s: iter(episodes.eval_dataset(samplers[s], eval_spec, config.run.seed,
                                             episodes.MONITOR_STREAM + i, start=first,
                                             step=config.eval.eval_interval))
               for i, s in enumerate(monitored)}
    tasks = iter(episodes.train_dataset(samplers["train"], train_spec, config.run.seed,
                                        config.meta.meta_batch, start_iteration=start))
    summaries.hparams(config, list(samplers))
    if start < config.meta.meta_iters:
        # The image shows the first task this session trains on.
        first_batch = next(tasks)
        summaries.episode(first_batch.images[0].numpy(), config.task.classes, start)
        tasks = itertools.chain([first_batch], tasks)
    bar = Progress("train", config.meta.meta_iters, start=start,
                   enabled=chief and progress.wanted(config.run.progress, sys.stderr))
    save = guard.guarded_save(run_checkpoint.save if chief else _silent, config.run.checkpoint,
                              stepper.model.trainable_variables)
    meta = config.meta
    try:
        with guard.stop_on_signals() as stop:
            train(stepper, tasks, monitor, save,
                  meta_iters=meta.meta_iters, meta_step=meta.meta_step,
                  meta_step_final=meta.meta_step_final, eval_interval=config.eval.eval_interval,
                  num_classes=config.task.classes, start_iteration=start, log_fn=bar.wrap(log_fn),
                  checkpoint_interval=config.run.checkpoint_interval,
                  tasks_at_once=tasks_at_once(config), recorder=summaries,
                  progress=bar, stop=stop)
    except distribute.PEER_ERRORS as err:
        if config.distribution.distribute == "none":
            raise
        raise distribute.worker_lost(err, run_checkpoint.latest) from None
    finally:
        summaries.flush()
        bar.close()


def _final_datasets(config, samplers, eval_spec) -> dict:
    """Split -> the final evaluation's `config.eval.eval_samples` tasks."""
    return {split: episodes.eval_dataset(sampler, eval_spec, config.run.seed,
                                         episodes.FINAL_EVAL_STREAM + i, config.eval.eval_samples)
            for i, (split, sampler) in enumerate(samplers.items())}


def _final_evaluation(config, algorithm, samplers, eval_spec) -> dict[str, np.ndarray]:
    """Split -> per-task correct counts over `config.eval.eval_samples` tasks."""
    counts = {}
    for split, data in _final_datasets(config, samplers, eval_spec).items():
        bar = Progress(f"eval {split}", config.eval.eval_samples,
                       enabled=progress.wanted(config.run.progress, sys.stderr))
        # MAML's protocol scores every inner step.
        counts[split] = evaluate(algorithm, data, config.eval.eval_samples,
                                 tasks_at_once(config),
                                 every_step=config.meta.algorithm == "maml", on_task=bar.update)
        bar.close()
    return counts


def _report(config, counts, log_fn) -> dict[str, float]:
    """Prints the accuracy lines (`report`); the chief writes the results file."""
    results = report.print_accuracies(counts, config.task.classes, log_fn)
    if config.run.eval_results and log_fn is not _silent:
        report.write(config.run.eval_results, counts, config.task.classes)
    return results
