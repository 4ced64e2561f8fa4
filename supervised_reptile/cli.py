"""The command-line entry point shared by `run_omniglot.py` and `run_miniimagenet.py`."""

import sys
from typing import Sequence

from supervised_reptile import guard
from supervised_reptile.config import parse_args


def main(argv: Sequence[str], dataset: str) -> int:
    """Parses flags, runs, and turns expected failures into one-line errors.

    Returns:
      The process exit status: 0 on success, 2 for bad flags or data, 1 when
      training diverged, a checkpoint could not be written or a peer of a
      multi-worker run was lost, 130 after Ctrl-C.
    """
    config = parse_args(argv, dataset)
    try:
        from supervised_reptile.experiment import run  # imports TensorFlow
        run(config, log_fn=lambda line: print(line, flush=True))
    except KeyboardInterrupt:  # before training, or a second Ctrl-C
        print("error: interrupted", file=sys.stderr)
        return 130
    except guard.Interrupted as err:
        print(f"{err} in {config.checkpoint!r}", file=sys.stderr)
        return 130
    except (guard.NonFiniteLoss, guard.CheckpointWriteError, guard.WorkerLostError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
