"""Every command's flags: with `flag_groups`, the only modules that see argparse.

The run scripts' flag names, types, defaults and meanings are the original's
(`supervised_reptile/args.py`), so its README commands run verbatim;
`--data-dir`, `--train-characters`, `--preset` and the rest are additions.
`--foml` and `--maml` become `Config.meta.algorithm`.
"""

import argparse
import dataclasses
import re
from typing import Sequence

from supervised_reptile import flag_groups, validate
from supervised_reptile.config import DATASETS, SINUSOID, Config
from supervised_reptile.flag_groups import SPLIT_DATASETS
from supervised_reptile.presets import (DATASET_PRESETS, MAML_PRESETS, PRESETS,
                                        SINUSOID_DEFAULTS)


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
    g = flag_groups.groups(p, sinusoid)
    if not sinusoid:
        flag_groups.add_data_flags(g, d, dataset)
    flag_groups.add_original_flags(g, d)
    flag_groups.add_maml_flags(g, d)
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
    flag_groups.add_run_flags(g, d)
    flag_groups.add_speed_flags(g, d)
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
    p.add_argument("--dataset", choices=("omniglot",) + SPLIT_DATASETS, required=True,
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
