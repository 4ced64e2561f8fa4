"""Guards around a long run: non-finite losses, Ctrl-C and SIGTERM, checkpoint writes.

Exit statuses that `cli.main` gives these (and the README documents):
  1    `NonFiniteLoss`, `CheckpointWriteError` or `WorkerLostError`: the run
       failed; the checkpoints written before the failure are kept untouched.
  130  `Interrupted` by Ctrl-C: a final checkpoint was written first.
  143  `Interrupted` by SIGTERM (128 + 15, what a shell reports for a process
       that SIGTERM killed): a final checkpoint was written first.
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


#: The signals that stop training cleanly, as messages name them.
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Interrupted(Exception):
    """Ctrl-C or SIGTERM (`signum`) stopped training after `iteration`, whose
    checkpoint was written."""

    def __init__(self, iteration: int, signum: int = signal.SIGINT):
        by = "" if signum == signal.SIGINT else f" by {STOP_SIGNALS.get(signum, signum)}"
        super().__init__(f"interrupted{by}: stopped after meta-iteration {iteration} and wrote "
                         "its checkpoint")
        self.iteration = iteration
        self.signum = signum


class Terminated(KeyboardInterrupt):
    """A second signal, the last a SIGTERM, quit at once (no final checkpoint)."""


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
    """Checks that `directory` can be created, a file written there and space is left.

    Creates nothing: a missing directory is checked through its nearest
    existing parent (the run creates it when it takes its lock, `lock.hold`),
    so a run that then fails on its data leaves no empty folder behind.

    Raises:
      ValueError: naming the directory and the reason.
    """
    existing = os.path.abspath(directory)
    while not os.path.exists(existing):  # False as well below a regular file
        existing = os.path.dirname(existing)
    try:
        with tempfile.TemporaryFile(dir=existing) as f:
            f.write(b"x")
        free = shutil.disk_usage(existing).free
    except OSError as err:
        raise ValueError(f"{directory!r} is not a writable directory: "
                                   f"{err.strerror or err}") from None
    if free < min_free_bytes:
        raise ValueError(f"{directory!r} has {free / 2**20:.1f} MiB free; "
                                   f"at least {min_free_bytes / 2**20:.0f} MiB are needed")


class StopFlag:
    """Set by the first Ctrl-C or SIGTERM (`signum`); the training loop stops
    at the next iteration boundary."""

    requested = False
    signum = signal.SIGINT


@contextlib.contextmanager
def stop_on_signals(log_fn: Callable[[str], None] | None = None) -> Iterator[StopFlag]:
    """Turns the first SIGINT or SIGTERM into `flag.requested = True`; a second
    one of either quits at once (`KeyboardInterrupt`, or `Terminated` for SIGTERM).

    SIGTERM is what batch schedulers, container platforms and preemptible
    cloud machines send before they stop a job, so it saves like Ctrl-C.
    Outside the main thread (where signals cannot be handled), neither is
    handled; a signal that is ignored (SIGINT in a job started in the
    background with `nohup` or `&`) stays ignored.
    """
    flag = StopFlag()

    def _handler(signum, frame):
        if flag.requested:
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        flag.requested, flag.signum = True, signum
        again = "press Ctrl-C again" if signum == signal.SIGINT else "send SIGTERM again"
        (log_fn or _stderr)(f"{STOP_SIGNALS[signum]}: stopping after this meta-iteration and "
                            f"writing a checkpoint ({again} to quit at once)")

    previous = {}
    try:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, _handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
