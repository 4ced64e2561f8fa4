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
#: The regression benchmark of the MAML and Reptile papers (`run_sinusoid.py`), issue 3.
SINUSOID = "sinusoid"


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
      skip_bad_images: leave out image files that do not decode (each is
        named in a warning) instead of stopping with an error.
      distribute: "none", "mirrored" (all GPUs, or `cpu_devices` logical CPU
        devices) or "multi-worker" (processes configured by `TF_CONFIG`): the
        meta-batch's tasks are spread over the replicas (`distribute.py`).
      cpu_devices: with `distribute="mirrored"` and no GPU, how many logical
        CPU devices to split the CPU into (for testing the distributed path).
      maml: MAML (Finn et al. 2017) instead of Reptile: inner SGD on the whole
        support set, outer Adam on the query loss.
      maml_first_order: with `maml`, drop the second-order terms.
      maml_inner_lr: with `maml`, alpha, the inner SGD step size.
      meta_lr: with `maml`, the outer Adam learning rate.
      maml_query_shots: with `maml`, query images per class in a training task
        (0: as many as the support shots, as the reference code on Omniglot).
      restart: start over: delete this run's checkpoints and TensorBoard logs
        in `checkpoint` instead of resuming from them.
      checkpoint_interval: iterations between checkpoints (and at the end).
      progress: progress bar on stderr: "auto" (when stderr is a terminal),
        "on" or "off".
      eval_results: file for the final evaluation's per-task results (".json"
        or ".csv"); "" for none.
      export: directory for a SavedModel of the trained model; "" for none.
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
    # -- errors (issue 5) --
    skip_bad_images: bool = False
    # -- distribution (issue 6) --
    distribute: str = "none"
    cpu_devices: int = 1
    # -- MAML and sinusoid (issue 3) --
    maml: bool = False
    maml_first_order: bool = False
    maml_inner_lr: float = 0.01
    meta_lr: float = 1e-3
    maml_query_shots: int = 0
    # -- resume, monitoring and export (issue 4) --
    restart: bool = False
    checkpoint_interval: int = 100
    progress: str = "auto"
    eval_results: str = ""
    export: str = ""
    # -- speed (issue 7) --
    parallel_tasks: bool = False
    inner_state: str | None = None
    eval_tasks_at_once: int = 16

    def __post_init__(self):
        _check_maml(self)

    @property
    def effective_query_shots(self) -> int:
        """MAML's query images per class in a training task."""
        return self.maml_query_shots or self.effective_train_shots

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

# MAML paper (Finn et al. 2017, section 5.2 and appendix A.1; cbfinn/maml main.py):
# Omniglot 5-way alpha 0.4, 1 inner step, meta-batch 32; 20-way alpha 0.1, 5 steps,
# meta-batch 16; evaluation with 3 steps on 5-way Omniglot. Mini-ImageNet alpha 0.01,
# 5 steps (10 at test), meta-batch 4 (1-shot) or 2 (5-shot), 15 queries per class,
# 32 filters (this port's Mini-ImageNet model). All: Adam meta-lr 1e-3, 60,000
# meta-iterations, 600 test tasks. The reference's Omniglot queries: K per class.
_MAML = dict(maml=True, meta_lr=1e-3, meta_iters=60000, eval_samples=600)
_MAML_OMNI = dict(_MAML, maml_inner_lr=0.4, inner_iters=1, eval_iters=3, meta_batch=32)
_MAML_OMNI20 = dict(_MAML, classes=20, maml_inner_lr=0.1, inner_iters=5, eval_iters=5,
                    meta_batch=16)
_MAML_MINI = dict(_MAML, maml_inner_lr=0.01, inner_iters=5, eval_iters=10,
                  maml_query_shots=15)

#: The MAML paper's settings (issue 3), by the same naming scheme.
MAML_PRESETS = {
    "maml-o15": ("omniglot", dict(_MAML_OMNI, shots=1)),
    "maml-o55": ("omniglot", dict(_MAML_OMNI, shots=5)),
    "maml-o120": ("omniglot", dict(_MAML_OMNI20, shots=1)),
    "maml-o520": ("omniglot", dict(_MAML_OMNI20, shots=5)),
    "maml-m15": ("miniimagenet", dict(_MAML_MINI, shots=1, meta_batch=4)),
    "maml-m55": ("miniimagenet", dict(_MAML_MINI, shots=5, meta_batch=2)),
}

#: `run_sinusoid.py`'s defaults (issue 3): K=10 points per task, a few minutes on 2 CPU cores.
SINUSOID_DEFAULTS = dict(classes=1, shots=10, inner_batch=10, inner_iters=5, learning_rate=0.02, meta_step=1.0, meta_step_final=0.0,
                         meta_batch=10, meta_iters=4000, eval_batch=10, eval_iters=10,
                         eval_samples=200, eval_interval=500, maml_inner_lr=0.01,
                         checkpoint="sinusoid_checkpoint")


def _check_maml(c: "Config") -> None:
    """Raises ValueError for flags that contradict `--maml` (issue 3)."""
    if not c.maml:
        if c.maml_first_order:
            raise ValueError("--maml-first-order needs --maml (Reptile's first-order MAML "
                             "is --foml)")
        return
    conflicts = {"--foml": c.foml, f"--foml-tail {c.foml_tail}": c.foml_tail is not None,
                 "--sgd": c.sgd, f"--weight-decay {c.weight_decay}": c.weight_decay != 1.0}
    for flag, present in conflicts.items():
        if present:
            raise ValueError(f"{flag} cannot be combined with --maml: MAML's inner loop is "
                             "plain SGD with --maml-inner-lr on the whole support set "
                             "(--maml-first-order gives first-order MAML)")
    if c.maml_query_shots < 0:
        raise ValueError(f"--maml-query-shots {c.maml_query_shots} must be >= 0 "
                         "(0: as many as the support shots)")
    if not c.meta_lr > 0:
        raise ValueError(f"--meta-lr {c.meta_lr} must be > 0")


def _all_presets() -> dict:
    return {**PRESETS, **MAML_PRESETS}


def _add_maml_flags(p: argparse.ArgumentParser, d: Config) -> None:
    """Flags of issue 3: second-order MAML next to the original's --foml."""
    p.add_argument("--maml", action="store_true", help="use MAML (Finn et al. 2017) "
                   "instead of Reptile: inner SGD steps on the whole support set "
                   "(--inner-iters in training, --eval-iters at test; --inner-batch, "
                   "--eval-batch and --meta-step are then unused), outer Adam on the query loss")
    p.add_argument("--maml-first-order", action="store_true",
                   help="with --maml: drop the second-order terms (first-order MAML)")
    p.add_argument("--maml-inner-lr", default=d.maml_inner_lr, type=float,
                   help="with --maml: inner SGD step size alpha")
    p.add_argument("--meta-lr", default=d.meta_lr, type=float,
                   help="with --maml: outer Adam learning rate")
    p.add_argument("--maml-query-shots", default=d.maml_query_shots, type=int,
                   help="with --maml: query images per class in a training task "
                   "(0: as many as the support shots)")


def build_parser(dataset: str) -> argparse.ArgumentParser:
    """The original's parser plus this port's additions, for one dataset."""
    if dataset not in DATASETS + (SINUSOID,):
        raise ValueError(f"unknown dataset {dataset!r}; valid: {DATASETS}")
    d = Config(**SINUSOID_DEFAULTS) if dataset == SINUSOID else Config()
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
    if dataset != SINUSOID:
        p.add_argument("--data-dir", help="dataset directory",
                       default=os.path.join("data", dataset))
    if dataset == "omniglot":
        p.add_argument("--train-characters", help="characters in the training split (the rest "
                       "are the test split)", default=d.train_characters, type=int)
    _add_maml_flags(p, d)
    if dataset == SINUSOID:
        p.description = "Reptile / first-order MAML / MAML on sinusoid regression."
        return p
    _add_errors_flags(p, d)
    _add_distribute_flags(p, d)
    _add_run_output_flags(p, d)
    _add_speed_flags(p, d)
    names = sorted(k for k, (ds, _) in _all_presets().items() if ds == dataset)
    p.add_argument("--preset", choices=names, default=None,
                   help="start from a paper command's settings (explicit flags override them)")
    return p


def _add_errors_flags(p: argparse.ArgumentParser, d: Config) -> None:
    """Flags of issue 5 (bad input and broken data)."""
    p.add_argument("--skip-bad-images", action="store_true", default=d.skip_bad_images,
                   help="leave out image files that do not decode (each is named in a "
                   "warning) instead of stopping with an error")


def parse_check_data_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags of `python -m supervised_reptile.check_data` (data_dir, dataset, decode)."""
    p = argparse.ArgumentParser(prog="python -m supervised_reptile.check_data",
                                description="Check a dataset directory: layout, images per "
                                "class and split against the original's, unreadable images.")
    p.add_argument("data_dir", help="e.g. data/omniglot or data/miniimagenet")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: miniimagenet if DATA_DIR has train/, val/ or test/, "
                   "else omniglot")
    p.add_argument("--no-decode", dest="decode", action="store_false",
                   help="only count files; do not open every image")
    return p.parse_args(argv)


def _add_distribute_flags(p: argparse.ArgumentParser, d: Config) -> None:
    p.add_argument("--distribute", choices=("none", "mirrored", "multi-worker"),
                   default=d.distribute,
                   help="spread each meta-batch's tasks over replicas: 'mirrored' = the GPUs "
                   "of this machine (or --cpu-devices logical CPUs), 'multi-worker' = processes "
                   "listed in TF_CONFIG. Updates are averaged by all-reduce; each replica "
                   "carries its own inner Adam state through its tasks and the states are "
                   "averaged after every meta-iteration; --sgd or --inner-state per-task "
                   "reproduce a single-device run bit for bit (see README)")
    p.add_argument("--cpu-devices", default=d.cpu_devices, type=int,
                   help="with --distribute mirrored and no GPU: logical CPU devices to use")


def _add_run_output_flags(p: argparse.ArgumentParser, d: Config) -> None:
    """Resume, monitoring and export flags (issue 4)."""
    p.add_argument("--restart", action="store_true",
                   help="start over: delete the checkpoints and TensorBoard logs in --checkpoint "
                   "(without it, a run with an existing checkpoint resumes from it)")
    p.add_argument("--checkpoint-interval", default=d.checkpoint_interval, type=int,
                   help="meta-iterations between checkpoints (one is also written at the end)")
    p.add_argument("--progress", default=d.progress, choices=("auto", "on", "off"),
                   help="progress bar with ETA on stderr; auto: only when stderr is a terminal")
    p.add_argument("--eval-results", default=d.eval_results, metavar="FILE",
                   help="write the final evaluation's per-task results to FILE (.json or .csv)")
    p.add_argument("--export", default=d.export, metavar="DIR",
                   help="after training, write a SavedModel (serve, adapt_and_predict) to DIR")
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
    """Parses command-line flags into a `Config` (argparse exits on bad syntax
    and on contradicting flags)."""
    parser = build_parser(dataset)
    first, _ = parser.parse_known_args(argv)
    if getattr(first, "preset", None):
        parser.set_defaults(**_all_presets()[first.preset][1])
    ns = vars(parser.parse_args(argv))
    ns.pop("preset", None)
    try:
        return Config(dataset=dataset, **ns)
    except ValueError as err:
        parser.error(str(err))
