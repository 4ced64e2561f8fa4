"""Checks a `Config` against itself and the dataset's sizes before any long work.

`before_run` is what a run calls first: the flags alone, then the checkpoint
directory, then the class and image counts from a directory listing (no
image is decoded). Every error is a `ValueError` (or `FileNotFoundError`)
whose message names the flag, its value and what would be valid; oddities
that do not break a run are passed to `warn`.
"""

import dataclasses
import math
import os
import sys
from typing import Callable

from supervised_reptile.data import check as check_data, omniglot
from supervised_reptile.config import Config

#: Flags that must be >= 1.
_POSITIVE = ("classes", "shots", "inner_batch", "inner_iters", "meta_batch", "eval_batch",
             "eval_iters", "eval_samples", "eval_interval")


def warn(message: str) -> None:
    """The default `warn`: one `warning: ...` line on stderr (stdout stays the run's log)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class SplitSize:
    """Classes in a split and its smallest class (after Omniglot's rotations)."""

    num_classes: int
    min_count: int
    smallest: str


def check_flags(config: Config, warn: Callable[[str], None] = warn) -> None:
    """Checks the flags alone (no file is touched)."""
    for field in _POSITIVE:
        value = getattr(config, field)
        if value < 1:
            raise ValueError(f"{_flag(field)} {value} must be a positive integer (>= 1)")
    for field in ("train_shots", "meta_iters"):
        if getattr(config, field) < 0:
            raise ValueError(f"{_flag(field)} {getattr(config, field)} must be >= 0")
    if config.dataset == "omniglot" and config.train_characters < 1:
        raise ValueError(f"--train-characters {config.train_characters} must be >= 1")
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise ValueError(f"--learning-rate {config.learning_rate} must be a positive number")
    if not 0 < config.weight_decay <= 1:
        raise ValueError(f"--weight-decay {config.weight_decay} must be in (0, 1] (a keep-"
                         "fraction applied before every inner step; 1 disables it)")
    for field in ("meta_step", "meta_step_final"):
        value = getattr(config, field)
        if not math.isfinite(value):
            raise ValueError(f"{_flag(field)} {value} must be a finite number in [0, 1]")
        if not 0 <= value <= 1:
            warn(f"{_flag(field)} {value} is outside [0, 1]: the meta-update overshoots "
                 "(> 1) or moves away from the adapted weights (< 0)")
    _check_algorithm_flags(config, warn)
    _check_batches(config, warn)
    _check_run_options(config)


def _check_algorithm_flags(config: Config, warn: Callable[[str], None]) -> None:
    shots = config.effective_train_shots
    if config.foml_tail is not None and not config.foml:
        warn(f"--foml-tail {config.foml_tail} has no effect without --foml (Reptile uses "
             "every inner batch alike)")
    if config.foml and config.foml_tail is not None:
        if not 0 < config.foml_tail < shots:
            raise ValueError(f"--foml-tail {config.foml_tail} must be between 1 and "
                             f"{shots - 1} (the training shots, {shots}, minus one)")
        if config.inner_iters < 2:
            raise ValueError("--foml-tail needs --inner-iters >= 2 (the original loops forever "
                             f"with {config.inner_iters}: no batch is left before the tail)")


def _check_run_options(config: Config) -> None:
    if config.cpu_devices < 1:
        raise ValueError(f"--cpu-devices {config.cpu_devices} must be >= 1")
    if config.cpu_devices > 1 and config.distribute != "mirrored":
        raise ValueError(f"--cpu-devices {config.cpu_devices} only applies to --distribute "
                         f"mirrored (got --distribute {config.distribute})")
    if config.checkpoint_interval < 1:
        raise ValueError(f"--checkpoint-interval {config.checkpoint_interval} must be >= 1")
    if config.parallel_tasks and config.distribute != "none":
        raise ValueError("--parallel-tasks cannot be combined with --distribute "
                         f"{config.distribute}: replicas run their tasks one after another; use "
                         "--inner-state per-task for the same rule")
    if config.parallel_tasks and config.maml:
        raise ValueError("--parallel-tasks is not available with --maml (Reptile and FOML only)")
    if config.eval_tasks_at_once < 1:
        raise ValueError(f"--eval-tasks-at-once {config.eval_tasks_at_once} must be >= 1")
    if config.export and config.maml:
        raise ValueError(f"--export {config.export!r} is not available with --maml: the "
                         "SavedModel's adapt_and_predict runs the Reptile/FOML inner loop")


def _check_batches(config: Config, warn: Callable[[str], None]) -> None:
    tail = config.foml_tail if config.foml and config.foml_tail else 0
    sizes = (("inner_batch", config.classes * (config.effective_train_shots - tail),
              "--classes x (training shots - FOML tail)"),
             ("eval_batch", config.classes * config.shots, "--classes x --shots"))
    for field, task, what in sizes:
        value = getattr(config, field)
        if value <= task:
            continue
        if config.replacement:
            raise ValueError(f"{_flag(field)} {value} is larger than the task's {task} samples "
                             f"({what}), which --replacement cannot draw; valid: 1..{task}")
        warn(f"{_flag(field)} {value} is larger than the task's {task} samples ({what}): "
             "every inner batch repeats samples")


def split_sizes(config: Config, warn: Callable[[str], None] = warn) -> dict[str, SplitSize]:
    """Split name -> `SplitSize`, from a directory listing (as the loader will split it)."""
    if config.dataset == "omniglot":
        counts = check_data.scan_omniglot(config.data_dir)
        chars = list(counts)
        if not 0 < config.train_characters < len(chars):
            raise ValueError(f"--train-characters {config.train_characters} must be between 1 "
                             f"and {len(chars) - 1} ({len(chars)} characters found in "
                             f"{config.data_dir!r})")
        train, test = omniglot.split_characters(chars, config.train_characters, config.seed)
        groups = {"train": ({c: counts[c] for c in train}, len(omniglot.ROTATIONS)),
                  "test": ({c: counts[c] for c in test}, 1)}
    else:
        splits = check_data.scan_miniimagenet(config.data_dir)
        for note in check_data.miniimagenet_notes(splits):
            warn(f"{note} (check with `python -m supervised_reptile.check_data "
                 f"{config.data_dir}`)")
        groups = {s: (counts, 1) for s, counts in splits.items()}
    sizes = {}
    for split, (counts, copies) in groups.items():
        smallest = min(counts, key=counts.get)
        sizes[split] = SplitSize(len(counts) * copies, counts[smallest], smallest)
    return sizes


def check_sizes(config: Config, sizes: dict[str, SplitSize]) -> None:
    """Checks that every task the run draws fits in its split."""
    need = [(split, config.shots + 1, f"--shots {config.shots} (+1 query)")
            for split in sizes]
    if not config.pretrained:
        shots = config.effective_train_shots
        flag = "--train-shots" if config.train_shots else "--shots"
        need.insert(0, ("train", shots, f"{flag} {shots}"))
    for split, images, what in need:
        size = sizes[split]
        if config.classes > size.num_classes:
            raise ValueError(f"--classes {config.classes} is more than the {size.num_classes} "
                             f"classes of the {split} split; valid: 1..{size.num_classes}")
        if images > size.min_count:
            raise ValueError(
                f"{what} needs {images} images per class but the smallest class of the {split} "
                f"split, {size.smallest!r}, has {size.min_count}; lower it, or remove or "
                "complete that class")


def before_run(config: Config, warn: Callable[[str], None] = warn) -> None:
    """Everything that can be checked before decoding images, cheapest first."""
    check_flags(config, warn)
    if config.pretrained:
        if not os.path.exists(os.path.join(config.checkpoint, "checkpoint")):
            raise FileNotFoundError(f"--pretrained: no checkpoint in {config.checkpoint!r}")
    else:
        from supervised_reptile.guard import check_checkpoint_dir
        check_checkpoint_dir(config.checkpoint)
    check_sizes(config, split_sizes(config, warn))
