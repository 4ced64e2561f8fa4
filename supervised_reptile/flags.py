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
from supervised_reptile.config import DATASETS, SINUSOID, Config
from supervised_reptile.presets import (DATASET_PRESETS, MAML_PRESETS, PRESETS,
                                        SINUSOID_DEFAULTS)

#: Datasets of train/val/test splits, all run by `run_miniimagenet.py --dataset`.
SPLIT_DATASETS = tuple(d for d in DATASETS if d != "omniglot")


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
    scores: bool


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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help with `(default: X)` only where it says something: not after
    switches, unset or empty values, or help that explains its own default;
    descriptions and examples keep their line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        quiet = (action.default is None or action.default is False
                 or action.default in ("", ()) or action.nargs == 0
                 or "default" in text.lower() or action.default is argparse.SUPPRESS)
        return text if quiet else text + " (default: %(default)s)"


def _parser(**kwargs) -> argparse.ArgumentParser:
    """Every command's parser: grouped help, no abbreviated flags (a typo such
    as `--meta-iter` must not silently become another flag)."""
    return argparse.ArgumentParser(formatter_class=HelpFormatter, allow_abbrev=False, **kwargs)


def _short_metavars(p: argparse.ArgumentParser) -> None:
    """`N` for integer flags and `X` for real ones, where no other name was given
    (argparse's default, the flag in capitals, doubles every line of help)."""
    for action in p._actions:
        if action.metavar is None and action.choices is None and action.nargs is None:
            action.metavar = {int: "N", float: "X"}.get(action.type, action.metavar)


def _groups(p: argparse.ArgumentParser, sinusoid: bool) -> dict[str, argparse._ArgumentGroup]:
    names = {"data": "data and task", "inner": "inner loop (adapting to one task)",
             "meta": "meta-training", "eval": "evaluation", "run": "run and output",
             "maml": "MAML (instead of Reptile)" if not sinusoid else "MAML and baselines",
             "speed": "speed (none changes results by default)",
             "dist": "distribution (several GPUs or machines)"}
    return {key: p.add_argument_group(title) for key, title in names.items()}


def _add_original_flags(g: dict, d: dict) -> None:
    """The original's flags (`args.py`), with `d`'s defaults, in their groups."""
    g["eval"].add_argument("--pretrained", action="store_true",
                           help="evaluate the checkpoint in --checkpoint without training")
    g["meta"].add_argument("--seed", default=d["seed"], type=int,
                           help="the one seed of every random choice (tasks, weights, split)")
    g["run"].add_argument("--checkpoint", default=d["checkpoint"], metavar="DIR",
                          help="the run's folder: checkpoints, config.json, split.json, "
                          "TensorBoard events; a run with a checkpoint there resumes")
    g["data"].add_argument("--classes", default=d["classes"], type=int, metavar="N",
                           help="classes per task (N-way)")
    g["data"].add_argument("--shots", default=d["shots"], type=int, metavar="K",
                           help="examples per class at evaluation (K-shot)")
    g["data"].add_argument("--train-shots", default=d["train_shots"], type=int, metavar="K",
                           help="examples per class in a meta-training task (default: 0, "
                           "the same as --shots)")
    g["inner"].add_argument("--inner-batch", default=d["inner_batch"], type=int,
                            help="mini-batch size of an inner step in meta-training")
    g["inner"].add_argument("--inner-iters", default=d["inner_iters"], type=int,
                            help="inner steps per task in meta-training")
    g["data"].add_argument("--replacement", action="store_true",
                           help="draw each inner mini-batch independently (else: passes "
                           "over the task's examples without replacement)")
    g["inner"].add_argument("--learning-rate", default=d["learning_rate"], type=float,
                            help="inner Adam step size (SGD's with --sgd)")
    g["meta"].add_argument("--meta-step", default=d["meta_step"], type=float,
                           help="meta step size at the first meta-iteration (Reptile's "
                           "epsilon: the fraction of the way to the adapted weights)")
    g["meta"].add_argument("--meta-step-final", default=d["meta_step_final"], type=float,
                           help="meta step size at the last meta-iteration (annealed "
                           "linearly from --meta-step)")
    g["meta"].add_argument("--meta-batch", default=d["meta_batch"], type=int,
                           help="tasks per meta-iteration")
    g["meta"].add_argument("--meta-iters", default=d["meta_iters"], type=int,
                           help="meta-iterations to train for")
    g["eval"].add_argument("--eval-batch", default=d["eval_batch"], type=int,
                           help="mini-batch size of an inner step at evaluation")
    g["eval"].add_argument("--eval-iters", default=d["eval_iters"], type=int,
                           help="inner steps per task at evaluation")
    g["eval"].add_argument("--eval-samples", default=d["eval_samples"], type=int,
                           help="tasks per split in the final evaluation")
    g["eval"].add_argument("--eval-interval", default=d["eval_interval"], type=int,
                           help="meta-iterations between monitoring evaluations (the "
                           "`batch N: train=... test=...` lines)")
    g["inner"].add_argument("--weight-decay", default=d["weight_decay"], type=float,
                            help="fraction of every weight kept before each inner step "
                            "(default: 1, no decay)")
    g["data"].add_argument("--transductive", action="store_true",
                           help="predict all of a task's queries in one batch (batch norm "
                           "then sees them together)")
    g["meta"].add_argument("--foml", action="store_true",
                           help="first-order MAML instead of Reptile (the original's FOML)")
    g["meta"].add_argument("--foml-tail", default=None, type=int, metavar="K",
                           help="with --foml: examples per class of the final inner "
                           "mini-batch (default: unset, the last batch as it comes)")
    g["inner"].add_argument("--sgd", action="store_true",
                            help="plain SGD instead of Adam (beta1=0) in the inner loop")


def _add_maml_flags(g: dict, d: dict) -> None:
    """Second-order MAML next to the original's --foml."""
    a = g["maml"].add_argument
    a("--maml", action="store_true", help="MAML (Finn et al. 2017) instead of Reptile: inner "
      "SGD steps on the whole support set (--inner-iters in training, --eval-iters at "
      "test; --inner-batch, --eval-batch and --meta-step are then unused), outer Adam on "
      "the query loss")
    a("--maml-first-order", action="store_true",
      help="with --maml: drop the second-order terms (first-order MAML)")
    a("--maml-inner-lr", default=d["maml_inner_lr"], type=float,
      help="with --maml: inner SGD step size alpha")
    a("--meta-lr", default=d["meta_lr"], type=float,
      help="with --maml: outer Adam learning rate")
    a("--maml-query-shots", default=d["maml_query_shots"], type=int,
      help="with --maml: query images per class in a training task (default: 0, as many "
      "as the support shots)")


def _add_run_flags(g: dict, d: dict) -> None:
    """Bad images, resume, monitoring, export and distribution."""
    g["data"].add_argument("--skip-bad-images", action="store_true",
                           default=d["skip_bad_images"],
                           help="leave out image files that do not decode (each is named in "
                           "a warning) instead of stopping with an error")
    g["dist"].add_argument("--distribute", choices=("none", "mirrored", "multi-worker"),
                           default=d["distribute"],
                           help="spread each meta-batch's tasks over replicas: 'mirrored' = "
                           "the GPUs of this machine (or --cpu-devices logical CPUs), "
                           "'multi-worker' = processes listed in TF_CONFIG. Updates are "
                           "averaged by all-reduce; each replica carries its own inner Adam "
                           "state through its tasks and the states are averaged after every "
                           "meta-iteration; --sgd or --inner-state per-task reproduce a "
                           "single-device run bit for bit (see README)")
    g["dist"].add_argument("--cpu-devices", default=d["cpu_devices"], type=int,
                           help="with --distribute mirrored and no GPU: logical CPU devices")
    g["run"].add_argument("--restart", action="store_true",
                          help="start over: delete the checkpoints and TensorBoard logs in "
                          "--checkpoint (without it, a run with a checkpoint resumes)")
    g["run"].add_argument("--checkpoint-interval", default=d["checkpoint_interval"], type=int,
                          help="meta-iterations between checkpoints (one is also written at "
                          "the end)")
    g["run"].add_argument("--progress", default=d["progress"], choices=("auto", "on", "off"),
                          help="progress bar with ETA on stderr (default: auto, only when "
                          "stderr is a terminal)")
    g["eval"].add_argument("--eval-results", default=d["eval_results"], metavar="FILE",
                           help="write the final evaluation's per-task results to FILE "
                           "(.json or .csv; default: none written)")
    g["run"].add_argument("--export", default=d["export"], metavar="DIR",
                          help="after the final evaluation, write a SavedModel (serve, "
                          "adapt_and_predict) to DIR for `python -m supervised_reptile.predict` "
                          "(default: none written)")


def _add_speed_flags(g: dict, d: dict) -> None:
    """Speed options; none changes results by default."""
    a = g["speed"].add_argument
    a("--parallel-tasks", action="store_true",
      help="meta-train the meta-batch's tasks at once (vectorised). NOT the original's "
      "semantics: each task starts from the inner optimizer state of the start of the "
      "meta-iteration, and the state afterwards is the mean of the tasks' final states "
      "(Adam: mean m and v; the step count advances by --inner-iters per meta-iteration). "
      "Implies --inner-state per-task")
    a("--inner-state", choices=("shared", "per-task"), default=d["inner_state"],
      help="inner optimizer state in meta-training: 'shared' flows from task to task as in "
      "the original; 'per-task' is --parallel-tasks' rule run one task after another (equal "
      "to it up to float rounding). Default: 'per-task' with --parallel-tasks, else 'shared'")
    a("--eval-tasks-at-once", type=int, default=d["eval_tasks_at_once"],
      help="evaluation tasks adapted at once (each from the same meta-weights and optimizer "
      "state, so results equal one-by-one evaluation up to float rounding); 1: one by one")
    for pool, what in (("intra", "threads one op may use"),
                       ("inter", "ops run at the same time")):
        a(f"--{pool}-op-threads", type=int, default=d[f"{pool}_op_threads"], metavar="N",
          help=f"TensorFlow's {pool}-op thread pool ({what}); 0: TensorFlow's default (one "
          "per core). Default: the setting measured fastest for the model on a 2-core CPU "
          "(docs/performance.md)")


def _add_data_flags(g: dict, d: dict, dataset: str) -> None:
    """Where the images are: the additions to the original's flags."""
    a = g["data"].add_argument
    a("--data-dir", default=os.path.join("data", dataset), metavar="DIR",
      help="the dataset folder (`python -m supervised_reptile.check_data DIR` checks it)")
    if dataset in SPLIT_DATASETS:
        a("--dataset", choices=SPLIT_DATASETS, default=dataset,
          help="which dataset --data-dir holds (its form is detected); 'folder' is your own "
          "train/, val/ and test/ folders of one sub-folder per class (docs/datasets.md)")
        a("--store", default=d["store"], metavar="DIR|off",
          help="the decoded-image store: the dataset is decoded once into this folder and "
          "later runs open it instead of decoding (default: .decoded inside --data-dir, or "
          "the user's cache folder if that is read-only); 'off' decodes every run and holds "
          "the images in memory")
    if dataset == "folder":
        a("--image-size", type=int, default=d["image_size"], metavar="PIXELS",
          help="side of the square every image is resized to (default: 0, the first "
          "training image's side if square and at most 84, else 84)")
        a("--channels", type=int, default=d["channels"], choices=(0, 1, 3),
          help="1: greyscale, 3: RGB (default: 0, greyscale if the first training image is, "
          "else RGB)")
    if dataset == "omniglot":
        a("--train-characters", default=d["train_characters"], type=int,
          help="characters in the training split (the rest are the test split; which ones: "
          "split.json in --checkpoint)")


def _preset_line(name: str, dataset: str, fields: dict) -> str:
    """`  m55    5-shot 5-way miniimagenet` and the like."""
    what = f"{fields.get('shots', 5)}-shot {fields.get('classes', 5)}-way"
    extra = [dataset] if dataset not in ("omniglot", "miniimagenet") else []
    extra += ["transductive"] if fields.get("transductive") else []
    extra += ["MAML"] if fields.get("algorithm") == "maml" else []
    paper = " (paper)" if name in PRESETS or name in MAML_PRESETS else ""
    return f"  {name:<10} {what}{', ' if extra else ''}{', '.join(extra)}{paper}"


def build_parser(dataset: str) -> argparse.ArgumentParser:
    """The original's parser plus this port's additions, for one dataset (or sinusoid)."""
    if dataset not in DATASETS + (SINUSOID,):
        raise ValueError(f"unknown dataset {dataset!r}; valid: {DATASETS}")
    d = (Config.from_flat(**SINUSOID_DEFAULTS) if dataset == SINUSOID else Config()).flat()
    sinusoid = dataset == SINUSOID
    p = _parser(description=f"Reptile, first-order MAML (--foml) or second-order MAML "
                f"(--maml) on {dataset}.")
    g = _groups(p, sinusoid)
    if not sinusoid:
        _add_data_flags(g, d, dataset)
    _add_original_flags(g, d)
    _add_maml_flags(g, d)
    if sinusoid:
        p.description = ("Reptile, first-order MAML or MAML, or the MAML paper's baselines, "
                         "on sinusoid regression: the MSE before and after meta-training, "
                         "and a picture of the fits.")
        g["maml"].add_argument(
            "--baseline", choices=("pretrained", "oracle"), default=None,
            help="instead of meta-learning: 'pretrained' trains one network on the mixture "
            "of tasks (Adam with --meta-lr on every task's points), then fine-tunes it on "
            "each test task with --maml-inner-lr; 'oracle' is that network also given each "
            "task's amplitude and phase")
        g["run"].add_argument("--compare", nargs="+", default=(), metavar="DIR",
                              help="draw the adapted fits of these earlier sinusoid runs "
                              "(their --checkpoint folders) beside this run's in the picture")
        p.epilog = "example:\n  python run_sinusoid.py --meta-iters 2000 --checkpoint sin1"
        _short_metavars(p)
        return p
    _add_run_flags(g, d)
    _add_speed_flags(g, d)
    presets = {k: v for k, v in all_presets().items()
               if v[0] == dataset or (dataset in SPLIT_DATASETS and v[0] in SPLIT_DATASETS)}
    g["data"].add_argument("--preset", choices=sorted(presets), default=None, metavar="NAME",
                           help="start from a preset's settings (listed below; explicit "
                           "flags override them)")
    script = "run_omniglot.py" if dataset == "omniglot" else "run_miniimagenet.py"
    data = " --train-characters 100 --data-dir data/omniglot_small" if dataset == "omniglot" \
        else ""
    _short_metavars(p)
    p.epilog = ("presets (--preset NAME; <shots><ways>, t = transductive):\n"
                + "\n".join(_preset_line(k, *v) for k, v in presets.items())
                + f"\n\nexample:\n  python {script} --preset "
                f"{'o15t' if dataset == 'omniglot' else 'm55'} --meta-iters 1000{data} "
                "--checkpoint ckpt_first")
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
    p = _parser(
        prog="python -m supervised_reptile.export",
        description="Export the newest checkpoint of a training run as a SavedModel "
                    "(signatures serve, adapt_and_predict, adapt_and_predict_with_batches).")
    p.add_argument("--checkpoint", required=True,
                   help="the training run's --checkpoint folder (with config.json)")
    p.add_argument("--export", required=True, help="output folder for the SavedModel")
    return ExportArgs(**vars(p.parse_args(argv)))


def parse_predict_args(argv: Sequence[str] | None) -> PredictArgs:
    """`--model DIR --support DIR --query DIR`."""
    p = _parser(
        prog="python -m supervised_reptile.predict",
        description="Few-shot classification with an exported model: adapt to the labelled "
                    "examples, then print a label for every query image.")
    p.add_argument("--model", required=True, help="a folder written by --export")
    p.add_argument("--support", required=True,
                   help="labelled examples: one sub-folder of images per class")
    p.add_argument("--query", required=True, help="a folder of images to classify")
    p.add_argument("--scores", action="store_true",
                   help="also print each class's probability (`class=p`, tab-separated)")
    p.epilog = ("example:\n  python -m supervised_reptile.predict --model model_o15t "
                "--support my_support --query my_query --scores\n"
                "(my_support/<class>/ holds a few labelled images per class)")
    return PredictArgs(**vars(p.parse_args(argv)))


def parse_check_data_args(argv: Sequence[str] | None) -> CheckDataArgs:
    """`DATA_DIR [--dataset omniglot|miniimagenet] [--no-decode]`."""
    p = _parser(prog="python -m supervised_reptile.check_data",
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
    p = _parser(
        prog="python -m supervised_reptile.convert",
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
