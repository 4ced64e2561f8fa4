"""Guards around a long run: non-finite losses, Ctrl-C, checkpoint writes.

Exit statuses that `cli.main` gives these (and the README documents):
  1    `NonFiniteLoss`, `CheckpointWriteError` or `WorkerLostError`: the run
       failed; the checkpoints written before the failure are kept untouched.
  130  `Interrupted` (Ctrl-C): a final checkpoint was written first.
"""

import contextlib
import math
import os
import shutil
import signal
import sys
import tempfile
from typing import Callable, Iterator, Sequence

import numpy as np

#: Refuse to start training with less free space than this in the checkpoint
#: directory (a checkpoint of the Mini-ImageNet model with Adam's slots is
#: under 2 MB; five are kept, plus TensorBoard events).
MIN_FREE_BYTES = 64 * 2**20


class NonFiniteLoss(RuntimeError):
    """The loss or the weights became NaN or infinite."""


class WorkerLostError(RuntimeError):
    """A peer of a multi-worker run stopped answering (crashed, killed or cut off)."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (full disk, unwritable directory)."""


class Interrupted(Exception):
    """Ctrl-C stopped training after `iteration`, whose checkpoint was written."""

    def __init__(self, iteration: int):
        super().__init__(f"interrupted: stopped after meta-iteration {iteration} and wrote "
                         "its checkpoint")
        self.iteration = iteration


#: The meta-step statistic that says whether the new meta-weights are all finite.
WEIGHTS_FINITE = "weights_finite"


def check_finite(metrics: dict | None, iteration: int) -> None:
    """Raises `NonFiniteLoss` if a meta-step's scalar metrics are not finite.

    Args:
      metrics: what `meta_step` returned (e.g. `{"inner_loss": scalar}`); None is allowed.
      iteration: the meta-iteration, for the message.
    """
    metrics = dict(metrics or {})
    weights_finite = float(np.asarray(metrics.pop(WEIGHTS_FINITE, 1.0))) == 1.0
    for name, value in metrics.items():
        value = float(np.asarray(value))
        if not math.isfinite(value):
            raise _diverged(f"{name} is {value}", iteration)
    if not weights_finite:
        raise _diverged("the meta-weights are not finite", iteration)


def _diverged(what: str, iteration: int) -> NonFiniteLoss:
    return NonFiniteLoss(
        f"{what} at meta-iteration {iteration}: training diverged; stopped without saving, so "
        "the checkpoints written before it hold the last good weights (try a lower "
        "`learning_rate` or `meta_step`)")


def guarded_save(save: Callable[[int], None], directory: str,
                 variables: Sequence) -> Callable[[int], None]:
    """Wraps a checkpoint writer: refuses non-finite weights, reports write failures.

    Args:
      save: writes the checkpoint of an iteration.
      directory: the checkpoint directory, for messages.
      variables: the weights to check before every save.
    """
    def _save(iteration: int) -> None:
        if not all(np.isfinite(np.asarray(v)).all() for v in variables):
            raise NonFiniteLoss(f"the weights are not finite at meta-iteration {iteration}; "
                                "not saving them, the earlier checkpoints are kept")
        try:
            save(iteration)
        except Exception as err:  # noqa: BLE001 - OSError and tf.errors.OpError alike
            if isinstance(err, (NonFiniteLoss, KeyboardInterrupt)):
                raise
            reason = getattr(err, "message", None) or str(err)
            raise CheckpointWriteError(
                f"could not write the checkpoint of meta-iteration {iteration} to "
                f"{directory!r}: {type(err).__name__}: {reason.splitlines()[0]} (disk full or "
                "directory not writable?); earlier checkpoints are kept") from err
    return _save


def check_checkpoint_dir(directory: str, min_free_bytes: int = MIN_FREE_BYTES) -> None:
    """Creates `directory` and checks that a file can be written there and space is left.

    Raises:
      ValueError: naming the directory and the reason.
    """
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory) as f:
            f.write(b"x")
        free = shutil.disk_usage(directory).free
    except OSError as err:
        raise ValueError(f"{directory!r} is not a writable directory: "
                                   f"{err.strerror or err}") from None
    if free < min_free_bytes:
        raise ValueError(f"{directory!r} has {free / 2**20:.1f} MiB free; "
                                   f"at least {min_free_bytes / 2**20:.0f} MiB are needed")


class StopFlag:
    """Set by the first Ctrl-C; the training loop stops at the next iteration boundary."""

    requested = False


@contextlib.contextmanager
def stop_on_sigint(log_fn: Callable[[str], None] | None = None) -> Iterator[StopFlag]:
    """Turns the first SIGINT into `flag.requested = True`; a second one interrupts at once.

    Outside the main thread (where signals cannot be handled), or where
    SIGINT is ignored (started in the background with `nohup` or `&`), the
    flag is never set and SIGINT keeps its usual effect.
    """
    flag = StopFlag()

    def _handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        (log_fn or _stderr)("Ctrl-C: stopping after this meta-iteration and writing a "
                            "checkpoint (press Ctrl-C again to quit at once)")

    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            raise ValueError("SIGINT is ignored")
        previous = signal.signal(signal.SIGINT, _handler)
    except ValueError:  # not the main thread, or SIGINT ignored
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
