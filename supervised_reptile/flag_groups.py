"""The run commands' flags, group by group (data and task, inner loop,
meta-training, evaluation, run and output, MAML, speed, distribution).

`flags.build_parser` assembles them per dataset; each function adds one
concern's flags with the defaults `d` (a flat `Config`) to the groups `g`.
"""

import argparse
import os

from supervised_reptile.config import DATASETS

#: Datasets of train/val/test splits, all run by `run_miniimagenet.py --dataset`.
SPLIT_DATASETS = tuple(d for d in DATASETS if d != "omniglot")


def groups(p: argparse.ArgumentParser, sinusoid: bool) -> dict[str, argparse._ArgumentGroup]:
    names = {"data": "data and task", "inner": "inner loop (adapting to one task)",
             "meta": "meta-training", "eval": "evaluation", "run": "run and output",
             "maml": "MAML (instead of Reptile)" if not sinusoid else "MAML and baselines",
             "speed": "speed (none changes results by default)",
             "dist": "distribution (several GPUs or machines)"}
    return {key: p.add_argument_group(title) for key, title in names.items()}


def add_original_flags(g: dict, d: dict) -> None:
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


def add_maml_flags(g: dict, d: dict) -> None:
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


def add_run_flags(g: dict, d: dict) -> None:
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


def add_speed_flags(g: dict, d: dict) -> None:
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
      "state, so results equal one-by-one evaluation up to float rounding); 1: one by one. "
      "Default: the setting measured fastest for the model on a 2-core CPU (16 for Omniglot "
      "and sinusoid, 1 for the 84x84 network; docs/performance.md)")
    for pool, what in (("intra", "threads one op may use"),
                       ("inter", "ops run at the same time")):
        a(f"--{pool}-op-threads", type=int, default=d[f"{pool}_op_threads"], metavar="N",
          help=f"TensorFlow's {pool}-op thread pool ({what}); 0: TensorFlow's default (one "
          "per core). Default: the setting measured fastest for the model on a 2-core CPU "
          "(docs/performance.md)")


def add_data_flags(g: dict, d: dict, dataset: str) -> None:
    """Where the images are: the additions to the original's flags."""
    a = g["data"].add_argument
    a("--data-dir", default=os.path.join("data", dataset), metavar="DIR",
      help="the dataset folder (`python -m supervised_reptile.check_data DIR` checks it)")
    a("--store", default=d["store"], metavar="DIR|off",
      help="the decoded-image store: the dataset is decoded once into this folder and "
      "later runs open it instead of decoding (default: .decoded inside --data-dir, or "
      "the user's cache folder if that is read-only); 'off' decodes every run and holds "
      "the images in memory")
    if dataset in SPLIT_DATASETS:
        a("--dataset", choices=SPLIT_DATASETS, default=dataset,
          help="which dataset --data-dir holds (its form is detected); 'folder' is your own "
          "train/, val/ and test/ folders of one sub-folder per class (docs/datasets.md)")
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
