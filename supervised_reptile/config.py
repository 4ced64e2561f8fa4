"""Run configuration: a frozen dataclass, the original's flags, and the paper presets.

The only module that sees argparse. Flag names, types, defaults and meanings
are the original's (`supervised_reptile/args.py`), so its README commands run
verbatim; `--data-dir`, `--train-characters` and `--preset` are additions.
"""

import argparse
import dataclasses
import json
import os
from typing import Sequence

DATASETS = ("omniglot", "miniimagenet")


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a run needs; field names follow the flags.

    Attributes:
      dataset: "omniglot" or "miniimagenet".
      data_dir: dataset root (`data/omniglot` or `data/miniimagenet` by default).
      train_characters: Omniglot only: characters in the training split; the
        rest form the test split.
      pretrained: skip training; evaluate the latest checkpoint.
      seed: the one seed for weights, the Omniglot split and every task.
      checkpoint: directory for checkpoints and TensorBoard logs.
      classes: N, classes per task (training and evaluation).
      shots: K, support images per class at evaluation (and in training when
        `train_shots` is 0).
      train_shots: images per class in a meta-training task (0: use `shots`).
      inner_batch: inner mini-batch size in meta-training.
      inner_iters: inner steps per meta-training task.
      replacement: draw each inner mini-batch independently (training and evaluation).
      learning_rate: inner optimizer step size (Adam, or SGD with `sgd`).
      meta_step: initial meta step size epsilon.
      meta_step_final: epsilon is annealed linearly towards this.
      meta_batch: tasks per meta-update.
      meta_iters: meta-iterations.
      eval_batch: inner mini-batch size when fine-tuning on an evaluation task.
      eval_iters: inner steps on an evaluation task.
      eval_samples: tasks per split in the final evaluation.
      eval_interval: iterations between monitoring evaluations.
      weight_decay: multiplicative shrink before every inner step (1: none).
      transductive: predict all queries in one batch.
      foml: first-order MAML instead of Reptile.
      foml_tail: with `foml`, shots per class held out for the final inner batch.
      sgd: plain SGD instead of Adam (beta1=0) in the inner loop.
      parallel_tasks: meta-train a meta-batch's tasks at once (not the
        original's semantics: each task gets its own copy of the inner
        optimizer state; see `algorithms`).
      inner_state: "shared" (the original) or "per-task" inner optimizer state
        in meta-training; None: "per-task" with `parallel_tasks`, else "shared".
      eval_tasks_at_once: evaluation tasks adapted at once (same results as
        one by one, up to float rounding).
    """

    dataset: str = "omniglot"
    data_dir: str = ""
    train_characters: int = 1200
    pretrained: bool = False
    seed: int = 0
    checkpoint: str = "model_checkpoint"
    classes: int = 5
    shots: int = 5
    train_shots: int = 0
    inner_batch: int = 5
    inner_iters: int = 20
    replacement: bool = False
    learning_rate: float = 1e-3
    meta_step: float = 0.1
    meta_step_final: float = 0.1
    meta_batch: int = 1
    meta_iters: int = 400000
    eval_batch: int = 5
    eval_iters: int = 50
    eval_samples: int = 10000
    eval_interval: int = 10
    weight_decay: float = 1.0
    transductive: bool = False
    foml: bool = False
    foml_tail: int | None = None
    sgd: bool = False
    # -- speed (issue 7) --
    parallel_tasks: bool = False
    inner_state: str | None = None
    eval_tasks_at_once: int = 16

    @property
    def effective_train_shots(self) -> int:
        """`--train-shots or --shots`, as the original."""
        return self.train_shots or self.shots

    def save(self, directory: str) -> None:
        """Writes the resolved configuration to `directory/config.json`."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2, sort_keys=True)


_PAPER = dict(meta_step=1.0, meta_step_final=0.0, meta_batch=5, eval_iters=50)
_OMNI = dict(_PAPER, train_shots=10, inner_batch=10, inner_iters=5, meta_iters=100000,
             eval_batch=5, learning_rate=0.001)
_OMNI20 = dict(_PAPER, classes=20, train_shots=10, inner_batch=20, inner_iters=10,
               meta_iters=200000, eval_batch=10, learning_rate=0.0005)
_MINI = dict(_PAPER, train_shots=15, inner_batch=10, inner_iters=8, meta_iters=100000,
             learning_rate=0.001)

#: The README's paper commands (final version, commit 8f2b71c), by checkpoint name.
PRESETS = {
    "o15t": ("omniglot", dict(_OMNI, shots=1, transductive=True)),
    "o55": ("omniglot", dict(_OMNI)),
    "o15": ("omniglot", dict(_OMNI, shots=1)),
    "o120": ("omniglot", dict(_OMNI20, shots=1)),
    "o520": ("omniglot", dict(_OMNI20)),
    "m15t": ("miniimagenet", dict(_MINI, shots=1, eval_batch=5, transductive=True)),
    "m55": ("miniimagenet", dict(_MINI, eval_batch=15)),
    "m15": ("miniimagenet", dict(_MINI, shots=1, eval_batch=5)),
}


def build_parser(dataset: str) -> argparse.ArgumentParser:
    """The original's parser plus this port's additions, for one dataset."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {DATASETS}")
    d = Config()
    p = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description=f"Reptile / first-order MAML on {dataset}.")
    p.add_argument("--pretrained", help="evaluate a pre-trained model", action="store_true")
    p.add_argument("--seed", help="random seed", default=d.seed, type=int)
    p.add_argument("--checkpoint", help="checkpoint directory", default=d.checkpoint)
    p.add_argument("--classes", help="number of classes per inner task", default=d.classes, type=int)
    p.add_argument("--shots", help="number of examples per class", default=d.shots, type=int)
    p.add_argument("--train-shots", help="shots in a training batch", default=d.train_shots, type=int)
    p.add_argument("--inner-batch", help="inner batch size", default=d.inner_batch, type=int)
    p.add_argument("--inner-iters", help="inner iterations", default=d.inner_iters, type=int)
    p.add_argument("--replacement", help="sample with replacement", action="store_true")
    p.add_argument("--learning-rate", help="Adam step size", default=d.learning_rate, type=float)
    p.add_argument("--meta-step", help="meta-training step size", default=d.meta_step, type=float)
    p.add_argument("--meta-step-final", help="meta-training step size by the end",
                   default=d.meta_step_final, type=float)
    p.add_argument("--meta-batch", help="meta-training batch size", default=d.meta_batch, type=int)
    p.add_argument("--meta-iters", help="meta-training iterations", default=d.meta_iters, type=int)
    p.add_argument("--eval-batch", help="eval inner batch size", default=d.eval_batch, type=int)
    p.add_argument("--eval-iters", help="eval inner iterations", default=d.eval_iters, type=int)
    p.add_argument("--eval-samples", help="evaluation samples", default=d.eval_samples, type=int)
    p.add_argument("--eval-interval", help="train steps per eval", default=d.eval_interval, type=int)
    p.add_argument("--weight-decay", help="weight decay rate", default=d.weight_decay, type=float)
    p.add_argument("--transductive", help="evaluate all samples at once", action="store_true")
    p.add_argument("--foml", help="use FOML instead of Reptile", action="store_true")
    p.add_argument("--foml-tail", help="number of shots for the final mini-batch in FOML",
                   default=None, type=int)
    p.add_argument("--sgd", help="use vanilla SGD instead of Adam", action="store_true")
    # Additions of this port.
    p.add_argument("--data-dir", help="dataset directory", default=os.path.join("data", dataset))
    if dataset == "omniglot":
        p.add_argument("--train-characters", help="characters in the training split (the rest "
                       "are the test split)", default=d.train_characters, type=int)
    _add_speed_flags(p, d)
    names = sorted(k for k, (ds, _) in PRESETS.items() if ds == dataset)
    p.add_argument("--preset", choices=names, default=None,
                   help="start from a paper command's settings (explicit flags override them)")
    return p


def _add_speed_flags(p: argparse.ArgumentParser, d: Config) -> None:
    """Flags of the speed options (issue 7); none changes results by default."""
    p.add_argument("--parallel-tasks", action="store_true",
                   help="meta-train the meta-batch's tasks at once (vectorised). NOT the "
                   "original's semantics: each task starts from the inner optimizer state of "
                   "the start of the meta-iteration, and the state afterwards is the mean of "
                   "the tasks' final states (Adam: mean m and v; the step count advances by "
                   "--inner-iters per meta-iteration). Implies --inner-state per-task")
    p.add_argument("--inner-state", choices=("shared", "per-task"), default=d.inner_state,
                   help="inner optimizer state in meta-training: 'shared' flows from task to "
                   "task as in the original; 'per-task' is --parallel-tasks' rule run one task "
                   "after another (equal to it up to float rounding). Default: 'per-task' "
                   "with --parallel-tasks, else 'shared'")
    p.add_argument("--eval-tasks-at-once", type=int, default=d.eval_tasks_at_once,
                   help="evaluation tasks adapted at once (each from the same meta-weights "
                   "and optimizer state, so results equal one-by-one evaluation up to float "
                   "rounding); 1 evaluates one by one")


def parse_args(argv: Sequence[str] | None, dataset: str) -> Config:
    """Parses command-line flags into a `Config` (argparse exits on bad syntax)."""
    parser = build_parser(dataset)
    first, _ = parser.parse_known_args(argv)
    if first.preset:
        parser.set_defaults(**PRESETS[first.preset][1])
    ns = vars(parser.parse_args(argv))
    ns.pop("preset")
    return Config(dataset=dataset, **ns)
