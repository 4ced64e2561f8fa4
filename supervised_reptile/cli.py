"""The command-line entry point shared by `run_omniglot.py` and `run_miniimagenet.py`."""

import sys
from typing import Sequence

from supervised_reptile.config import parse_args


def main(argv: Sequence[str], dataset: str) -> int:
    """Parses flags, runs, and turns expected failures into one-line errors.

    Returns:
      The process exit status: 0 on success, 2 for bad flags or data, 1 when a peer of a
      multi-worker run is lost.
    """
    config = parse_args(argv, dataset)
    from supervised_reptile.distribute import WorkerLostError  # imports TensorFlow
    from supervised_reptile.experiment import run
    try:
        run(config, log_fn=lambda line: print(line, flush=True))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except WorkerLostError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
