"""Every command's `main`: parse flags, run, and turn expected failures into one exit status.

Exit statuses, shared by all commands:
  0    success;
  1    training diverged (`guard.NonFiniteLoss`), a checkpoint could not be
       written (`guard.CheckpointWriteError`) or a peer of a multi-worker run
       was lost (`guard.WorkerLostError`); `check_data` also when it found
       problems in the data;
  2    bad flags (argparse) or bad data (`ValueError`, `OSError`); also a
       `--checkpoint` folder that another live run holds (`lock.FolderInUse`);
  130  Ctrl-C (`guard.Interrupted` once training stopped cleanly, else
       `KeyboardInterrupt`);
  143  SIGTERM during training (128 + 15, as a shell reports a process that
       SIGTERM killed; `guard.Interrupted` once training stopped cleanly, else
       `guard.Terminated` for a second signal). Outside training SIGTERM keeps
       its default action.

TensorFlow is imported only inside the commands that need it, so `--help`
stays fast.
"""

import signal
import sys
from typing import Callable, Sequence

from supervised_reptile import flags, guard

OK, FAILED, BAD_INPUT, INTERRUPTED, TERMINATED = 0, 1, 2, 130, 143


def _print_line(line: str) -> None:
    print(flags.for_users(line), flush=True)


def _error(message: str) -> None:
    print(flags.for_users(f"error: {message}"), file=sys.stderr)


def _exit_status(body: Callable[[], int | None], checkpoint: str | None = None) -> int:
    """Runs `body` and maps what it raises to the exit status (the table above)."""
    try:
        status = body()
    except guard.Terminated:  # a second signal while stopping, the last a SIGTERM
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return TERMINATED
    except KeyboardInterrupt:  # before training, or a second Ctrl-C
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    except guard.Interrupted as err:
        print(f"{err} in {checkpoint!r}", file=sys.stderr)
        return TERMINATED if err.signum == signal.SIGTERM else INTERRUPTED
    except (guard.NonFiniteLoss, guard.CheckpointWriteError, guard.WorkerLostError) as err:
        _error(str(err))
        return FAILED
    except (ValueError, OSError) as err:
        _error(str(err))
        return BAD_INPUT
    return OK if status is None else status


def main(argv: Sequence[str] | None, dataset: str) -> int:
    """`run_omniglot.py` / `run_miniimagenet.py`: train (or `--pretrained`), evaluate."""
    config = flags.parse_args(argv, dataset)

    def body():
        from supervised_reptile.experiment import run  # imports TensorFlow
        run(config, log_fn=_print_line)

    return _exit_status(body, config.run.checkpoint)


def sinusoid_main(argv: Sequence[str] | None) -> int:
    """`run_sinusoid.py`: the MSE before and after meta-training, and a picture."""
    config = flags.parse_args(argv, flags.SINUSOID)

    def body():
        from supervised_reptile.sinusoid_experiment import run  # imports TensorFlow
        run(config, log_fn=_print_line)

    return _exit_status(body, config.run.checkpoint)


def export_main(argv: Sequence[str] | None = None) -> int:
    """`python -m supervised_reptile.export --checkpoint CKPT --export DIR`."""
    args = flags.parse_export_args(argv)

    def body():
        from supervised_reptile import validate
        validate.check_export_source(args.checkpoint)
        validate.check_export_target(args.export)
        from supervised_reptile.saved_model import export_checkpoint  # imports TensorFlow
        path = export_checkpoint(args.checkpoint, args.export)
        print(f"Exported {path} to {args.export}")

    return _exit_status(body)


def predict_main(argv: Sequence[str] | None = None) -> int:
    """`python -m supervised_reptile.predict --model DIR --support DIR --query DIR`."""
    args = flags.parse_predict_args(argv)

    def body():
        from supervised_reptile.prediction import predict
        for name, label, probs in predict(args.model, args.support, args.query):
            scores = "".join(f"\t{c}={p:.3f}" for c, p in probs.items()) if args.scores else ""
            print(f"{name}\t{label}{scores}")

    return _exit_status(body)


def check_data_main(argv: Sequence[str] | None = None) -> int:
    """`python -m supervised_reptile.check_data DATA_DIR`: 1 when it found problems."""
    args = flags.parse_check_data_args(argv)

    def body():
        from supervised_reptile.data.check import report
        return report(args.data_dir, args.dataset, args.decode, log_fn=_print_line)

    return _exit_status(body)


def convert_main(argv: Sequence[str] | None = None) -> int:
    """`python -m supervised_reptile.convert DATA_DIR --dataset NAME [--store DIR]`."""
    args = flags.parse_convert_args(argv)

    def body():
        from supervised_reptile.data import registry, store
        form = registry.find(args.data_dir, args.dataset, args.image_size, args.channels)
        _print_line(f"{args.dataset} in {args.data_dir}: {form.description}")
        path = args.store or store.default_location(form)
        fingerprint = form.fingerprint()
        current = store.open_if_current(path, form, fingerprint)
        if current is not None and not args.force:
            _print_line(f"The store {path} is up to date (pass --force to decode again)")
            return
        warn = (lambda line: print(f"warning: {line}", file=sys.stderr)) if args.skip_bad_images \
            else None
        store.write(form, path, warn, _print_line, fingerprint)

    return _exit_status(body)
