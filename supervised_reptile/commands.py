"""Flags of the `export` and `predict` commands.

The run scripts' flags live in `config.py`; these two small tools have their
own parsers here so that library modules still never see argparse.
"""

import argparse
from typing import Sequence


def parse_export_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """`--checkpoint CKPT --export DIR`."""
    p = argparse.ArgumentParser(
        prog="python -m supervised_reptile.export",
        description="Export the newest checkpoint of a training run as a SavedModel "
                    "(signatures serve, adapt_and_predict, adapt_and_predict_with_batches).")
    p.add_argument("--checkpoint", required=True,
                   help="the training run's --checkpoint folder (with config.json)")
    p.add_argument("--export", required=True, help="output folder for the SavedModel")
    return p.parse_args(argv)


def parse_predict_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """`--model DIR --support DIR --query DIR`."""
    p = argparse.ArgumentParser(
        prog="python -m supervised_reptile.predict",
        description="Few-shot classification with an exported model: adapt to the labelled "
                    "examples, then print a label for every query image.")
    p.add_argument("--model", required=True, help="a folder written by --export")
    p.add_argument("--support", required=True,
                   help="labelled examples: one sub-folder of images per class")
    p.add_argument("--query", required=True, help="a folder of images to classify")
    return p.parse_args(argv)
