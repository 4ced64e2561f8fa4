"""Every command's flags: the only module that sees argparse.

The run scripts' flag names, types, defaults and meanings are the original's
(`supervised_reptile/args.py`), so its README commands run verbatim;
`--data-dir`, `--train-characters`, `--preset` and the rest are additions.
`--foml` and `--maml` become `Config.meta.algorithm`.
"""

import argparse
import dataclasses
import os
import re
from typing import Sequence

from supervised_reptile import validate
from supervised_reptile.config import DATASETS, SINUSOID

#: Datasets of train/val/test splits, all run by `run_miniimagenet.py --dataset`.
SPLIT_DATASETS = tuple(d for d in DATASETS if d != "omniglot")
from supervised_reptile.presets import (DATASET_PRESETS, MAML_PRESETS, PRESETS,
                                        SINUSOID_DEFAULTS)
from supervised_reptile.config import Config


@dataclasses.dataclass(frozen=True)
class ExportArgs:
    """`python -m supervised_reptile.export`: run folder in, SavedModel folder out."""
    checkpoint: str
    export: str


@dataclasses.dataclass(frozen=True)
class PredictArgs:
    """`python -m supervised_reptile.predict`: exported model, support and query folders."""
    model: str
    support: str
    query: str


@dataclasses.dataclass(frozen=True)
class CheckDataArgs:
    """`python -m supervised_reptile.check_data`: the folder, its form (None: guess), decode?"""
    data_dir: str
    dataset: str | None
    decode: bool


#: Settings that library messages name in backticks but that are no `Config` field.
_OTHER_FLAGS = {"no_decode": "--no-decode", "foml": "--foml", "maml": "--maml"}
#: Setting -> flag, built once: every printed line of a run goes through `for_users`.
_FLAG_OF = {**{f: validate.flag_name(f) for f in Config().flat()}, **_OTHER_FLAGS}


def for_users(message: str) -> str:
    """A library message with every setting it names in backticks (`data_dir`)
    named by the flag a user types (--data-dir): the library speaks of settings,
    the command line of flags."""
    return re.sub(r"`([a-z_]+)`", lambda m: _FLAG_OF.get(m.group(1), m.group(0)), message)


def all_presets() -> dict:
    """Preset name -> (dataset, flat fields): the papers' (Reptile's and MAML's),
    then this project's for the other datasets."""
    return {**PRESETS, **MAML_PRESETS, **DATASET_PRESETS}


def _add_original_flags(p: argparse.ArgumentParser, d: dict) -> None:
    """The original's flags (`args.py`), with `d`'s defaults."""
    p.add_argument("--pretrained", help="evaluate a pre-trained model", action="store_true")
    p.add_argument("--seed", help="random seed", default=d["seed"], type=int)
    p.add_argument("--checkpoint", help="checkpoint directory", default=d["checkpoint"])
    p.add_argument("--classes", help="number of classes per inner task", default=d["classes"],
                   type=int)
    p.add_argument("--shots", help="number of examples per class", default=d["shots"], type=int)
    p.add_argument("--train-shots", help="shots in a training batch", default=d["train_shots"],
                   type=int)
    p.add_argument("--inner-batch", help="inner batch size", default=d["inner_batch"], type=int)
    p.add_argument("--inner-iters", help="inner iterations", default=d["inner_iters"], type=int)
    p.add_argument("--replacement", help="sample with replacement", action="store_true")
    p.add_argument("--learning-rate", help="Adam step size", default=d["learning_rate"],
                   type=float)
    p.add_argument("--meta-step", help="meta-training step size", default=d["meta_step"],
                   type=float)
    p.add_argument("--meta-step-final", help="meta-training step size by the end",
                   default=d["meta_step_final"], type=float)
    p.add_argument("--meta-batch", help="meta-training batch size", default=d["meta_batch"],
                   type=int)
    p.add_argument("--meta-iters", help="meta-training iterations", default=d["meta_iters"],
                   type=int)
    p.add_argument("--eval-batch", help="eval inner batch size", default=d["eval_batch"], type=int)
    p.add_argument("--eval-iters", help="eval inner iterations", default=d["eval_iters"], type=int)
    p.add_argument("--eval-samples", help="evaluation samples", default=d["eval_samples"],
                   type=int)
    p.add_argument("--eval-interval", help="train steps per eval", default=d["eval_interval"],
                   type=int)
    p.add_argument("--weight-decay", help="weight decay rate", default=d["weight_decay"],
                   type=float)
    p.add_argument("--transductive", help="evaluate all samples at once", action="store_true")
    p.add_argument("--foml", help="use FOML instead of Reptile", action="store_true")
    p.add_argument("--foml-tail", help="number of shots for the final mini-batch in FOML",
                   default=None, type=int)
    p.add_argument("--sgd", help="use vanilla SGD instead of Adam", action="store_true")


def _add_maml_flags(p: argparse.ArgumentParser, d: dict) -> None:
    """Second-order MAML next to the original's --foml."""
    p.add_argument("--maml", action="store_true", help="use MAML (Finn et al. 2017) "
                   "instead of Reptile: inner SGD steps on the whole support set "
                   "(--inner-iters in training, --eval-iters at test; --inner-batch, "
                   "--eval-batch and --meta-step are then unused), outer Adam on the query loss")
    p.add_argument("--maml-first-order", action="store_true",
                   help="with --maml: drop the second-order terms (first-order MAML)")
    p.add_argument("--maml-inner-lr", default=d["maml_inner_lr"], type=float,
                   help="with --maml: inner SGD step size alpha")
    p.add_argument("--meta-lr", default=d["meta_lr"], type=float,
                   help="with --maml: outer Adam learning rate")
    p.add_argument("--maml-query-shots", default=d["maml_query_shots"], type=int,
                   help="with --maml: query images per class in a training task "
                   "(0: as many as the support shots)")


def _add_run_flags(p: argparse.ArgumentParser, d: dict) -> None:
    """Bad images, distribution, resume, monitoring and export."""
    p.add_argument("--skip-bad-images", action="store_true", default=d["skip_bad_images"],
                   help="leave out image files that do not decode (each is named in a "
                   "warning) instead of stopping with an error")
    p.add_argument("--distribute", choices=("none", "mirrored", "multi-worker"),
                   default=d["distribute"],
                   help="spread each meta-batch's tasks over replicas: 'mirrored' = the GPUs "
                   "of this machine (or --cpu-devices logical CPUs), 'multi-worker' = processes "
                   "listed in TF_CONFIG. Updates are averaged by all-reduce; each replica "
                   "carries its own inner Adam state through its tasks and the states are "
                   "averaged after every meta-iteration; --sgd or --inner-state per-task "
                   "reproduce a single-device run bit for bit (see README)")
    p.add_argument("--cpu-devices", default=d["cpu_devices"], type=int,
                   help="with --distribute mirrored and no GPU: logical CPU devices to use")
    p.add_argument("--restart", action="store_true",
                   help="start over: delete the checkpoints and TensorBoard logs in --checkpoint "
                   "(without it, a run with an existing checkpoint resumes from it)")
    p.add_argument("--checkpoint-interval", default=d["checkpoint_interval"], type=int,
                   help="meta-iterations between checkpoints (one is also written at the end)")
    p.add_argument("--progress", default=d["progress"], choices=("auto", "on", "off"),
                   help="progress bar with ETA on stderr; auto: only when stderr is a terminal")
    p.add_argument("--eval-results", default=d["eval_results"], metavar="FILE",
                   help="write the final evaluation's per-task results to FILE (.json or .csv)")
    p.add_argument("--export", default=d["export"], metavar="DIR",
                   help="after training, write a SavedModel (serve, adapt_and_predict) to DIR")


def _add_speed_flags(p: argparse.ArgumentParser, d: dict) -> None:
    """Speed options; none changes results by default."""
    p.add_argument("--parallel-tasks", action="store_true",
                   help="meta-train the meta-batch's tasks at once (vectorised). NOT the "
                   "original's semantics: each task starts from the inner optimizer state of "
                   "the start of the meta-iteration, and the state afterwards is the mean of "
                   "the tasks' final states (Adam: mean m and v; the step count advances by "
                   "--inner-iters per meta-iteration). Implies --inner-state per-task")
    p.add_argument("--inner-state", choices=("shared", "per-task"), default=d["inner_state"],
                   help="inner optimizer state in meta-training: 'shared' flows from task to "
                   "task as in the original; 'per-task' is --parallel-tasks' rule run one task "
                   "after another (equal to it up to float rounding). Default: 'per-task' "
                   "with --parallel-tasks, else 'shared'")
    p.add_argument("--eval-tasks-at-once", type=int, default=d["eval_tasks_at_once"],
                   help="evaluation tasks adapted at once (each from the same meta-weights "
                   "and optimizer state, so results equal one-by-one evaluation up to float "
                   "rounding); 1 evaluates one by one")
    for pool, what in (("intra", "threads one op may use"),
                       ("inter", "ops run at the same time")):
        p.add_argument(f"--{pool}-op-threads", type=int, default=d[f"{pool}_op_threads"],
                       metavar="N", help=f"TensorFlow's {pool}-op thread pool ({what}); 0: "
                       "TensorFlow's default (one per core). Default: the setting measured "
                       "fastest for the model on a 2-core CPU (docs/performance.md)")


def build_parser(dataset: str) -> argparse.ArgumentParser:
    """The original's parser plus this port's additions, for one dataset (or sinusoid)."""
    if dataset not in DATASETS + (SINUSOID,):
        raise ValueError(f"unknown dataset {dataset!r}; valid: {DATASETS}")
    d = (Config.from_flat(**SINUSOID_DEFAULTS) if dataset == SINUSOID else Config()).flat()
    p = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description=f"Reptile / first-order MAML on {dataset}.")
    _add_original_flags(p, d)
    if dataset != SINUSOID:
        p.add_argument("--data-dir", help="dataset directory",
                       default=os.path.join("data", dataset))
    if dataset in SPLIT_DATASETS:
        p.add_argument("--dataset", choices=SPLIT_DATASETS, default=dataset,
                       help="which dataset --data-dir holds (its form is detected: see "
                       "`python -m supervised_reptile.check_data`); 'folder' is your own "
                       "train/, val/ and test/ folders of one sub-folder per class")
        p.add_argument("--store", default=d["store"], metavar="DIR|off",
                       help="the decoded-image store: the dataset is decoded once into "
                       "this folder and later runs open it instead of decoding (default: "
                       ".decoded inside --data-dir, or the user's cache folder if that is "
                       "read-only); 'off' decodes every run and holds the images in memory")
    if dataset == "folder":
        p.add_argument("--image-size", type=int, default=d["image_size"], metavar="PIXELS",
                       help="side of the square every image is resized to (0: the first "
                       "training image's size if square and at most 84, else 84)")
        p.add_argument("--channels", type=int, default=d["channels"], choices=(0, 1, 3),
                       help="1: greyscale, 3: RGB (0: greyscale if the first training image "
                       "is, else RGB)")
    if dataset == "omniglot":
        p.add_argument("--train-characters", help="characters in the training split (the rest "
                       "are the test split)", default=d["train_characters"], type=int)
    _add_maml_flags(p, d)
    if dataset == SINUSOID:
        p.description = ("Reptile / first-order MAML / MAML, or the MAML paper's baselines, "
                         "on sinusoid regression.")
        p.add_argument("--baseline", choices=("pretrained", "oracle"), default=None,
                       help="instead of meta-learning: 'pretrained' trains one network on the "
                       "mixture of tasks (Adam with --meta-lr on every task's points), then "
                       "fine-tunes it on each test task with --maml-inner-lr; 'oracle' is that "
                       "network also given each task's amplitude and phase")
        p.add_argument("--compare", nargs="+", default=(), metavar="DIR",
                       help="draw the adapted fits of these earlier sinusoid runs (their "
                       "--checkpoint folders) beside this run's in the picture")
        return p
    _add_run_flags(p, d)
    _add_speed_flags(p, d)
    names = sorted(k for k, (ds, _) in all_presets().items()
                   if ds == dataset or (dataset in SPLIT_DATASETS and ds in SPLIT_DATASETS))
    p.add_argument("--preset", choices=names, default=None,
                   help="start from a paper command's settings (explicit flags override them)")
    return p


def _preset_defaults(name: str) -> dict:
    """A preset's flat fields as parser defaults (`algorithm` is the --foml/--maml switches)."""
    fields = dict(all_presets()[name][1])
    algorithm = fields.pop("algorithm", "reptile")
    return dict(fields, foml=algorithm == "foml", maml=algorithm == "maml")


def _chosen_dataset(argv: Sequence[str] | None, dataset: str) -> str:
    """The dataset of a split-dataset command: `--dataset`, else the preset's, else `dataset`."""
    if dataset not in SPLIT_DATASETS:
        return dataset
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--dataset", choices=SPLIT_DATASETS, default=None)
    pre.add_argument("--preset", default=None)
    known, _ = pre.parse_known_args(argv)
    if known.dataset:
        return known.dataset
    preset = all_presets().get(known.preset)
    return preset[0] if preset and preset[0] in SPLIT_DATASETS else dataset


def parse_args(argv: Sequence[str] | None, dataset: str) -> Config:
    """Parses a run's flags into a `Config` (argparse exits with status 2 on bad
    syntax and on contradicting flags).

    `dataset` is the command's own; a split-dataset command (Mini-ImageNet's)
    runs any split dataset that `--dataset` or the preset names.
    """
    dataset = _chosen_dataset(argv, dataset)
    parser = build_parser(dataset)
    first, _ = parser.parse_known_args(argv)
    if getattr(first, "preset", None):
        parser.set_defaults(**_preset_defaults(first.preset))
    ns = vars(parser.parse_args(argv))
    ns.pop("preset", None)
    try:
        algorithm = validate.algorithm(foml=ns.pop("foml"), maml=ns.pop("maml"),
                                       baseline=ns.pop("baseline", None))
        ns["compare"] = tuple(ns.get("compare", ()))
        ns.pop("dataset", None)
        config = Config.from_flat(dataset=dataset, algorithm=algorithm, **ns)
        validate.check_maml(config)
    except ValueError as err:
        parser.error(str(err))
    return config


def parse_export_args(argv: Sequence[str] | None) -> ExportArgs:
    """`--checkpoint CKPT --export DIR`."""
    p = argparse.ArgumentParser(
        prog="python -m supervised_reptile.export",
        description="Export the newest checkpoint of a training run as a SavedModel "
                    "(signatures serve, adapt_and_predict, adapt_and_predict_with_batches).")
    p.add_argument("--checkpoint", required=True,
                   help="the training run's --checkpoint folder (with config.json)")
    p.add_argument("--export", required=True, help="output folder for the SavedModel")
    return ExportArgs(**vars(p.parse_args(argv)))


def parse_predict_args(argv: Sequence[str] | None) -> PredictArgs:
    """`--model DIR --support DIR --query DIR`."""
    p = argparse.ArgumentParser(
        prog="python -m supervised_reptile.predict",
        description="Few-shot classification with an exported model: adapt to the labelled "
                    "examples, then print a label for every query image.")
    p.add_argument("--model", required=True, help="a folder written by --export")
    p.add_argument("--support", required=True,
                   help="labelled examples: one sub-folder of images per class")
    p.add_argument("--query", required=True, help="a folder of images to classify")
    return PredictArgs(**vars(p.parse_args(argv)))


def parse_check_data_args(argv: Sequence[str] | None) -> CheckDataArgs:
    """`DATA_DIR [--dataset omniglot|miniimagenet] [--no-decode]`."""
    p = argparse.ArgumentParser(prog="python -m supervised_reptile.check_data",
                                description="Check a dataset directory: layout, images per "
                                "class and split against the original's, unreadable images.")
    p.add_argument("data_dir", help="e.g. data/omniglot or data/miniimagenet")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: miniimagenet if DATA_DIR has train/, val/ or test/, "
                   "else omniglot")
    p.add_argument("--no-decode", dest="decode", action="store_false",
                   help="only count files; do not open every image")
    return CheckDataArgs(**vars(p.parse_args(argv)))


@dataclasses.dataclass(frozen=True)
class ConvertArgs:
    """`python -m supervised_reptile.convert`: a dataset folder in, a store out."""
    data_dir: str
    dataset: str
    store: str
    image_size: int
    channels: int
    skip_bad_images: bool
    force: bool


def parse_convert_args(argv: Sequence[str] | None) -> ConvertArgs:
    """`DATA_DIR --dataset NAME [--store DIR] [--image-size N] [--channels C] ...`."""
    p = argparse.ArgumentParser(
        prog="python -m supervised_reptile.convert", allow_abbrev=False,
        description="Decode a dataset, in any form this project reads, into a decoded-image "
                    "store (memory-mapped uint8 arrays plus an index) that runs open instead "
                    "of decoding. Runs do this by themselves on first use; this command does "
                    "it ahead of time, or into another folder.",
        epilog="example: python -m supervised_reptile.convert data/miniimagenet "
               "--dataset miniimagenet")
    p.add_argument("data_dir", help="the dataset folder (see `check_data` for the forms)")
    p.add_argument("--dataset", choices=SPLIT_DATASETS, required=True,
                   help="which dataset the folder holds")
    p.add_argument("--store", default="", metavar="DIR",
                   help="where to write the store (default: .decoded inside DATA_DIR, or "
                   "the user's cache folder if DATA_DIR is read-only), the folder a run's "
                   "--store names")
    p.add_argument("--image-size", type=int, default=0, metavar="PIXELS",
                   help="with --dataset folder: the side images are resized to (0: inferred)")
    p.add_argument("--channels", type=int, default=0, choices=(0, 1, 3),
                   help="with --dataset folder: 1 greyscale, 3 RGB (0: inferred)")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="leave out image files that do not decode (each is named)")
    p.add_argument("--force", action="store_true",
                   help="decode again even if the store is up to date")
    return ConvertArgs(**vars(p.parse_args(argv)))
