"""Checkpoints of a run: what is saved, exact resume, and the compatibility check.

A checkpoint holds everything a meta-iteration depends on: the meta-model's
variables, the inner optimizer's state (Adam's moments and step count) and
`iteration`, the number of the next meta-iteration. Nothing else is needed to
continue exactly: every task is a pure function of (seed, stream, index)
(`episodes`), the annealed meta-step is a function of the iteration, and the
weights are initialised from the seed. So a resumed run repeats the
uninterrupted one bit for bit (on CPU; see README "Resuming").

Atomicity: `tf.train.CheckpointManager` writes a checkpoint's data into a
temporary folder, merges it under its final name, and only then replaces the
`checkpoint` state file (by writing a temporary file and renaming it). A
process killed at any moment therefore leaves a state file that names only
complete checkpoints; `RunCheckpoint.restore` still falls back to the previous
ones if the newest cannot be read (e.g. a disk that lost a file).
"""

import glob
import os
import shutil
from typing import Callable

import tensorflow as tf

from supervised_reptile import config as config_lib
from supervised_reptile.config import CONFIG_FILE, Config

#: Fields that may change when a run resumes: they do not change the
#: training trajectory (evaluation settings, paths, this package's output
#: options). `meta_iters` may change too, but the annealed meta-step depends
#: on it, so a lengthened run is no longer the same as one planned that long.
#: `distribute` and `cpu_devices` may change (resuming on other hardware);
#: with the shared inner Adam state the continuation then follows the new
#: replica count's rule (README, "Across GPUs and machines"). Thread pools change
#: only the speed (and float rounding, as another machine would).
RESUMABLE_CHANGES = frozenset({
    "data_dir", "pretrained", "checkpoint", "meta_iters", "eval_batch", "eval_iters",
    "eval_samples", "eval_interval", "transductive", "restart", "checkpoint_interval",
    "progress", "eval_results", "export", "compare", "skip_bad_images", "distribute",
    "cpu_devices", "eval_tasks_at_once", "intra_op_threads", "inter_op_threads", "store"})

#: Fields that define the variables of a checkpoint (what `pretrained` and
#: the export command need to match). Fields are flat names as the flags see
#: them: `algorithm` is compared as the `foml` and `maml` switches.
STRUCTURE_FIELDS = ("dataset", "classes", "image_size", "channels", "sgd", "maml")
CHECKPOINT_NAME = "model.ckpt"
#: `RunCheckpoint.iteration` (the next meta-iteration) in a checkpoint file.
_ITERATION_KEY = "iteration/.ATTRIBUTES/VARIABLE_VALUE"


class RunCheckpoint:
    """The checkpoint of a run in `directory`: model, inner optimizer, iteration.

    Args:
      directory: the run's checkpoint folder.
      model: the meta-model.
      optimizer: the inner optimizer (an `InnerOptimizer`, already built).
      max_to_keep: checkpoints kept (the original keeps 5).
    """

    def __init__(self, directory: str, model, optimizer, max_to_keep: int = 5):
        self.directory = directory
        self.iteration = tf.Variable(0, dtype=tf.int64, trainable=False, name="iteration")
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                              iteration=self.iteration)
        self.max_to_keep = max_to_keep
        self.reload()

    def reload(self) -> None:
        """(Re)reads the directory's `checkpoint` state file."""
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=self.max_to_keep,
                                                  checkpoint_name=CHECKPOINT_NAME)

    @property
    def latest(self) -> str | None:
        """Path prefix of the newest complete checkpoint, or None."""
        return self.manager.latest_checkpoint

    def save(self, iteration: int) -> str:
        """Writes `model.ckpt-<iteration>` after meta-iteration `iteration`."""
        self.iteration.assign(iteration + 1)
        return self.manager.save(checkpoint_number=iteration)

    def restore(self, log_fn: Callable[[str], None] = print) -> tuple[str, int]:
        """Restores the newest readable checkpoint.

        Returns:
          `(path, next_iteration)`.

        Raises:
          FileNotFoundError: there is no checkpoint.
          ValueError: no checkpoint could be read, or its variables do not
            fit this model (the message names the first problem).
        """
        candidates = list(reversed(self.manager.checkpoints))
        if not candidates:
            raise FileNotFoundError(f"no checkpoint in {self.directory!r}")
        errors = []
        for path in candidates:
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            # A damaged file surfaces as any of these, depending on where it is cut.
            except (tf.errors.OpError, ValueError, AssertionError, IndexError, KeyError,
                    OSError) as err:
                first_line = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                errors.append(f"{os.path.basename(path)}: {first_line}")
                log_fn(f"warning: cannot restore {path} ({first_line}); trying an older one")
                continue
            return path, int(self.iteration.numpy())
        raise ValueError(f"no readable checkpoint in {self.directory!r}: " + "; ".join(errors))


def load_saved_config(directory: str) -> dict | None:
    """The flat fields of a run directory's `config.json` (either format), or None."""
    try:
        return config_lib.read(directory)
    except ValueError as err:
        raise ValueError(f"{err}; use `restart` to start over") from err


def _as_flags(flat: dict) -> dict:
    """Flat fields as the flags name them: `algorithm` -> the `foml`/`maml` switches."""
    out = {k: v for k, v in flat.items() if k != "algorithm"}
    algorithm = flat.get("algorithm", "reptile")
    return dict(out, foml=algorithm == "foml", maml=algorithm == "maml")


def mismatches(saved: dict, config: Config, fields=None) -> list[str]:
    """Descriptions of the fields where `config` differs from a saved configuration.

    Args:
      saved: a saved configuration's flat fields (fields it lacks count as
        their defaults).
      config: this run's configuration.
      fields: the flat fields to compare; default: all but `RESUMABLE_CHANGES`.
    """
    then_all = _as_flags({**Config().flat(), **config_lib.flat_dict(saved)})
    current = _as_flags(config.flat())
    if fields is None:
        fields = [n for n in current if n not in RESUMABLE_CHANGES]
    out = []
    for name in fields:
        if then_all[name] != current[name]:
            out.append(f"`{name}` was {then_all[name]!r} in the checkpoint's run, "
                       f"is {current[name]!r} now")
    return out


def check_compatible(directory: str, config: Config, fields=None) -> None:
    """Raises ValueError naming every mismatch between `config` and the saved one.

    A directory without `config.json` passes: the restore itself then checks
    the variables' shapes.
    """
    saved = load_saved_config(directory)
    if saved is None:
        return
    diffs = mismatches(saved, config, fields)
    if diffs:
        raise ValueError(f"the checkpoint in {directory!r} is from an incompatible configuration: "
                         + "; ".join(diffs)
                         + " (use the same flags, another `checkpoint`, or "
                         "`restart` to start over)")


def clear(directory: str) -> list[str]:
    """Deletes what a run wrote in `directory`: checkpoints, the state file,
    `config.json` and TensorBoard event files (nothing else).

    Returns:
      The deleted paths.
    """
    patterns = ["checkpoint", CHECKPOINT_NAME + "-*", CONFIG_FILE, "events.out.tfevents.*",
                os.path.join("*", "events.out.tfevents.*")]
    deleted = []
    for pattern in patterns:
        for path in glob.glob(os.path.join(glob.escape(directory), pattern)):
            if os.path.isdir(path):
                shutil.rmtree(path)  # a `<prefix>_temp` folder left by a killed save
            else:
                os.remove(path)
            deleted.append(path)
    return deleted


def remove_partial_writes(directory: str) -> list[str]:
    """Deletes the `model.ckpt-<i>_temp` folders that saves killed mid-write
    leave behind (never referenced by the state file); returns their paths."""
    paths = glob.glob(os.path.join(glob.escape(directory), CHECKPOINT_NAME + "-*_temp"))
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    return paths


def finished(directory: str, meta_iters: int) -> int | None:
    """The meta-iterations that the newest checkpoint in `directory` completed,
    when they are `meta_iters` or more (nothing is left to train), else None.

    Read from the checkpoint's `iteration` without building a model, so that
    a finished run is recognised before its data is loaded. An unreadable
    checkpoint gives None: the restore then reports it or falls back.
    """
    path = tf.train.latest_checkpoint(directory)
    if path is None:
        return None
    try:
        done = int(tf.train.load_checkpoint(path).get_tensor(_ITERATION_KEY))
    except (tf.errors.OpError, ValueError, KeyError):
        return None
    return done if done >= meta_iters else None


def prepare(run_checkpoint: RunCheckpoint, config: Config,
            log_fn: Callable[[str], None] = print) -> int:
    """Resumes or starts a training run; returns the first iteration to run.

    With `config.run.restart`, the directory's previous run is deleted first.
    Otherwise an existing checkpoint is checked against `config` (ValueError
    naming the mismatch) and restored.
    """
    if config.run.restart:
        if clear(config.run.checkpoint):
            log_fn(f"Restarting: deleted the previous run in {config.run.checkpoint}")
        run_checkpoint.reload()  # forget the deleted state file
        return 0
    if run_checkpoint.latest is None:
        return 0
    check_compatible(config.run.checkpoint, config)
    path, start = run_checkpoint.restore(log_fn)
    remove_partial_writes(config.run.checkpoint)
    log_fn(f"Resuming from {path} at iteration {start}")
    return start
