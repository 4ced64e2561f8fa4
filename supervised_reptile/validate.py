"""Every rule a configuration must obey, checked once, at the edge, in the flags' words.

`before_run` is what a run calls first: the flags alone, then the paths the
run writes (`--export` and `--eval-results`, written only at the end, and the
checkpoint directory), then the class and image counts from a directory
listing (no image is decoded). Every error is a `ValueError` (or `FileNotFoundError`)
whose message names the flag, its value and what would be valid; oddities
that do not break a run are passed to `warn`. Library constructors may check
their own arguments again, in their own words.
"""

import dataclasses
import math
import os
import sys
from typing import Callable

from supervised_reptile.data import check as check_data, omniglot, registry, store
from supervised_reptile.config import CONFIG_FILE, RESULT_FORMATS, Config

#: Flags that must be >= 1.
_POSITIVE = ("classes", "shots", "inner_batch", "inner_iters", "meta_batch", "eval_batch",
             "eval_iters", "eval_samples", "eval_interval")
#: `saved_model.METADATA_FILE` (not imported: that module imports TensorFlow).
_EXPORT_METADATA = "supervised_reptile.json"
_MAML_INNER_LOOP = ("MAML's inner loop is plain SGD with --maml-inner-lr on the whole support "
                    "set (--maml-first-order gives first-order MAML)")


def warn(message: str) -> None:
    """The default `warn`: one `warning: ...` line on stderr (stdout stays the run's log)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def flag_name(field: str) -> str:
    """The flag of a flat `Config` field: `inner_iters` -> `--inner-iters`."""
    return "--" + field.replace("_", "-")


_flag = flag_name


def algorithm(foml: bool, maml: bool, baseline: str | None = None) -> str:
    """`Config.meta.algorithm` from the `--foml`, `--maml` and `--baseline` flags."""
    if foml and maml:
        raise ValueError(f"--foml cannot be combined with --maml: {_MAML_INNER_LOOP}")
    if baseline and (foml or maml):
        raise ValueError(f"--baseline {baseline} cannot be combined with "
                         f"{'--foml' if foml else '--maml'}: the baseline is its own learner "
                         "(trained on the task mixture, fine-tuned with --maml-inner-lr)")
    return baseline or ("maml" if maml else "foml" if foml else "reptile")


def check_maml(config: Config) -> None:
    """Raises ValueError for flags that contradict `--maml`."""
    meta, inner = config.meta, config.inner
    if meta.algorithm not in ("maml", "pretrained", "oracle"):
        if meta.maml_first_order:
            raise ValueError("--maml-first-order needs --maml (Reptile's first-order MAML "
                             "is --foml)")
        return
    conflicts = {f"--foml-tail {meta.foml_tail}": meta.foml_tail is not None, "--sgd": inner.sgd,
                 f"--weight-decay {inner.weight_decay}": inner.weight_decay != 1.0}
    for flag, present in conflicts.items():
        if present:
            raise ValueError(f"{flag} cannot be combined with --maml: {_MAML_INNER_LOOP}")
    if meta.maml_query_shots < 0:
        raise ValueError(f"--maml-query-shots {meta.maml_query_shots} must be >= 0 "
                         "(0: as many as the support shots)")
    if not meta.meta_lr > 0:
        raise ValueError(f"--meta-lr {meta.meta_lr} must be > 0")


@dataclasses.dataclass(frozen=True)
class SplitSize:
    """Classes in a split and its smallest class (after Omniglot's rotations)."""

    num_classes: int
    min_count: int
    smallest: str


def check_flags(config: Config, warn: Callable[[str], None] = warn) -> None:
    """Checks the flags alone (no file is touched)."""
    flat = config.flat()  # the rules speak of flags, which are flat
    for field in _POSITIVE:
        if flat[field] < 1:
            raise ValueError(f"{_flag(field)} {flat[field]} must be a positive integer (>= 1)")
    for field in ("train_shots", "meta_iters"):
        if flat[field] < 0:
            raise ValueError(f"{_flag(field)} {flat[field]} must be >= 0")
    data, inner = config.data, config.inner
    if data.dataset == "omniglot" and data.train_characters < 1:
        raise ValueError(f"--train-characters {data.train_characters} must be >= 1")
    if not (math.isfinite(inner.learning_rate) and inner.learning_rate > 0):
        raise ValueError(f"--learning-rate {inner.learning_rate} must be a positive number")
    if not 0 < inner.weight_decay <= 1:
        raise ValueError(f"--weight-decay {inner.weight_decay} must be in (0, 1] (a keep-"
                         "fraction applied before every inner step; 1 disables it)")
    for field in ("meta_step", "meta_step_final"):
        value = flat[field]
        if not math.isfinite(value):
            raise ValueError(f"{_flag(field)} {value} must be a finite number in [0, 1]")
        if not 0 <= value <= 1:
            warn(f"{_flag(field)} {value} is outside [0, 1]: the meta-update overshoots "
                 "(> 1) or moves away from the adapted weights (< 0)")
    check_maml(config)
    _check_algorithm_flags(config, warn)
    _check_batches(config, warn)
    _check_run_options(config)


def _check_algorithm_flags(config: Config, warn: Callable[[str], None]) -> None:
    shots, meta = config.effective_train_shots, config.meta
    foml = meta.algorithm == "foml"
    if meta.foml_tail is not None and not foml:
        warn(f"--foml-tail {meta.foml_tail} has no effect without --foml (Reptile uses "
             "every inner batch alike)")
    if foml and meta.foml_tail is not None:
        if not 0 < meta.foml_tail < shots:
            raise ValueError(f"--foml-tail {meta.foml_tail} must be between 1 and "
                             f"{shots - 1} (the training shots, {shots}, minus one)")
        if config.inner.inner_iters < 2:
            raise ValueError("--foml-tail needs --inner-iters >= 2 (the original loops forever "
                             f"with {config.inner.inner_iters}: no batch is left before the tail)")


def _check_run_options(config: Config) -> None:
    dist, run, perf = config.distribution, config.run, config.performance
    if dist.cpu_devices < 1:
        raise ValueError(f"--cpu-devices {dist.cpu_devices} must be >= 1")
    if dist.cpu_devices > 1 and dist.distribute != "mirrored":
        raise ValueError(f"--cpu-devices {dist.cpu_devices} only applies to --distribute "
                         f"mirrored (got --distribute {dist.distribute})")
    if dist.distribute == "multi-worker" and "TF_CONFIG" not in os.environ:
        raise ValueError("--distribute multi-worker needs the TF_CONFIG environment variable "
                         "(the cluster spec and this worker's task; see the README)")
    if run.checkpoint_interval < 1:
        raise ValueError(f"--checkpoint-interval {run.checkpoint_interval} must be >= 1")
    if perf.parallel_tasks and dist.distribute != "none":
        raise ValueError("--parallel-tasks cannot be combined with --distribute "
                         f"{dist.distribute}: replicas run their tasks one after another; use "
                         "--inner-state per-task for the same rule")
    if perf.eval_tasks_at_once is not None and perf.eval_tasks_at_once < 1:
        raise ValueError(f"--eval-tasks-at-once {perf.eval_tasks_at_once} must be >= 1")
    for pool in ("intra", "inter"):
        threads = getattr(perf, f"{pool}_op_threads")
        if threads is not None and threads < 0:
            raise ValueError(f"--{pool}-op-threads {threads} must be >= 0 (0: TensorFlow's "
                             "default)")
    suffix = os.path.splitext(run.eval_results)[1].lower()
    if run.eval_results and suffix not in RESULT_FORMATS:
        raise ValueError(f"--eval-results {run.eval_results!r}: the file name must end in one "
                         f"of {RESULT_FORMATS}")


def _check_batches(config: Config, warn: Callable[[str], None]) -> None:
    task, meta = config.task, config.meta
    tail = meta.foml_tail if meta.algorithm == "foml" and meta.foml_tail else 0
    sizes = (("inner_batch", config.inner.inner_batch,
              task.classes * (config.effective_train_shots - tail),
              "--classes x (training shots - FOML tail)"),
             ("eval_batch", config.eval.eval_batch, task.classes * task.shots,
              "--classes x --shots"))
    for field, value, samples, what in sizes:
        if value <= samples:
            continue
        if task.replacement:
            raise ValueError(f"{_flag(field)} {value} is larger than the task's {samples} "
                             f"samples ({what}), which --replacement cannot draw; valid: "
                             f"1..{samples}")
        warn(f"{_flag(field)} {value} is larger than the task's {samples} samples ({what}): "
             "every inner batch repeats samples")


def split_sizes(config: Config, warn: Callable[[str], None] = warn) -> dict[str, SplitSize]:
    """Split name -> `SplitSize`, from a directory listing (as the loader will split it)."""
    data = config.data
    if data.dataset == "omniglot":
        form = registry.find(data.data_dir, "omniglot")  # the drawings' folder, or its store
        counts = (form.scan()[omniglot.ALL] if isinstance(form, store.Store)
                  else check_data.scan_omniglot(data.data_dir))
        chars = list(counts)
        if not 0 < data.train_characters < len(chars):
            raise ValueError(f"--train-characters {data.train_characters} must be between 1 "
                             f"and {len(chars) - 1} ({len(chars)} characters found in "
                             f"{data.data_dir!r})")
        train, test = omniglot.split_characters(chars, data.train_characters, config.run.seed)
        groups = {"train": ({c: counts[c] for c in train}, len(omniglot.ROTATIONS)),
                  "test": ({c: counts[c] for c in test}, 1)}
    else:
        form = registry.find(data.data_dir, data.dataset, data.image_size, data.channels)
        splits = form.scan()
        for line in check_data.run_warnings(form, splits, data.data_dir, data.dataset):
            warn(line)
        empty = [(s, c) for s, counts in splits.items() for c, n in counts.items() if n == 0]
        if not all(splits.values()) or empty:
            where = (f"class {empty[0][1]!r} of the {empty[0][0]} split has no images" if empty
                     else f"the {[s for s, c in splits.items() if not c][0]} split has no "
                     "classes")
            raise ValueError(f"{data.data_dir!r}: {where} ({form.description})")
        groups = {s: (counts, 1) for s, counts in splits.items()}
    sizes = {}
    for split, (counts, copies) in groups.items():
        smallest = min(counts, key=counts.get)
        sizes[split] = SplitSize(len(counts) * copies, counts[smallest], smallest)
    return sizes


def check_sizes(config: Config, sizes: dict[str, SplitSize]) -> None:
    """Checks that every task the run draws fits in its split."""
    task = config.task
    need = [(split, task.shots + 1, f"--shots {task.shots} (+1 query)") for split in sizes]
    if not config.run.pretrained:
        shots = config.effective_train_shots
        flag = "--train-shots" if task.train_shots else "--shots"
        need.insert(0, ("train", shots, f"{flag} {shots}"))
    for split, images, what in need:
        size = sizes[split]
        if task.classes > size.num_classes:
            raise ValueError(f"--classes {task.classes} is more than the {size.num_classes} "
                             f"classes of the {split} split; valid: 1..{size.num_classes}")
        if images > size.min_count:
            raise ValueError(
                f"{what} needs {images} images per class but the smallest class of the {split} "
                f"split, {size.smallest!r}, has {size.min_count}; lower it, or remove or "
                "complete that class")


def check_checkpoint_dir(directory: str) -> None:
    """`--checkpoint` can be created and written to, with space left."""
    from supervised_reptile.guard import check_checkpoint_dir as check_writable
    try:
        check_writable(directory)
    except ValueError as err:
        raise ValueError(f"--checkpoint {err}") from None


def check_output_paths(config: Config) -> None:
    """`--export` and `--eval-results`, written only after training, can be written.

    An existing `--export` folder must be empty or an export of this project
    (with `saved_model.METADATA_FILE`), which the new export replaces; other
    files would end up mixed with the SavedModel's, so such a folder is refused.
    """
    run = config.run
    if run.export:
        check_export_target(run.export)
    if run.eval_results:
        if os.path.isdir(run.eval_results):
            raise ValueError(f"--eval-results {run.eval_results!r} is a folder; pass a file "
                             f"name ending in one of {RESULT_FORMATS}")
        _check_writable("--eval-results", run.eval_results,
                        os.path.dirname(os.path.abspath(run.eval_results)))


def check_export_target(export: str) -> None:
    """The `--export` folder can be written and holds nothing but an earlier export."""
    if (os.path.isdir(export) and os.listdir(export)
            and not os.path.exists(os.path.join(export, _EXPORT_METADATA))):
        raise ValueError(f"--export {export!r} is a folder that holds other files, not a "
                         "SavedModel of this project; pass a new or empty folder")
    _check_writable("--export", export, export)


def _check_writable(flag: str, path: str, folder: str) -> None:
    """Raises ValueError unless `folder` is, or can be created as, a writable folder."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):  # False as well below a regular file
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{flag} {path!r} cannot be written: {existing!r} is a file, not a "
                         "folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path!r} cannot be written: no permission to write in "
                         f"{existing!r}")


def check_export_source(checkpoint_dir: str) -> None:
    """The export command's `--checkpoint` is a training run's folder."""
    if not os.path.exists(os.path.join(checkpoint_dir, CONFIG_FILE)):
        raise FileNotFoundError(f"no {CONFIG_FILE} in {checkpoint_dir!r}: "
                                "--checkpoint must be a training run's folder")


def before_run(config: Config, warn: Callable[[str], None] = warn) -> None:
    """Everything that can be checked before decoding images, cheapest first."""
    check_flags(config, warn)
    check_output_paths(config)
    run = config.run
    if run.pretrained:
        if not os.path.exists(os.path.join(run.checkpoint, "checkpoint")):
            raise FileNotFoundError(f"--pretrained: no checkpoint in {run.checkpoint!r}")
    else:
        check_checkpoint_dir(run.checkpoint)
    check_sizes(config, split_sizes(config, warn))
