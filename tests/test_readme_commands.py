"""Every command of the README (the original's 8 paper and 10 gradient-combination
commands) parses to the configuration it claims, and runs: a couple of meta-iterations
on generated data."""

import os
import re
import shlex

import pytest

from conftest import REPO, make_miniimagenet, make_omniglot
from supervised_reptile import experiment
from supervised_reptile.config import Config
from supervised_reptile.presets import PRESETS
from supervised_reptile.flags import parse_args


def _readme_commands():
    text = open(os.path.join(REPO, "README.md")).read()
    # The original's commands only (other sections have their own tests).
    text = text.split("## The paper's commands")[1].split("\n## ")[0]
    shared = re.search(r'^shared="([^"]*)"', text, re.M).group(1)
    commands = []
    for line in text.splitlines():
        m = re.match(r"python (?:-u )?(run_omniglot|run_miniimagenet)\.py (.*)", line)
        if m:
            args = m.group(2).split("|")[0].replace("$shared", shared)
            commands.append((m.group(1).split("_")[1], shlex.split(args)))
    return commands


COMMANDS = _readme_commands()


def test_the_readme_has_all_eighteen_commands():
    assert len(COMMANDS) == 18
    assert sum(ds == "miniimagenet" for ds, _ in COMMANDS) == 3


# The gradient-combination commands: the shared flags, then per checkpoint name
# (inner_iters, train_shots, meta_step, algorithm).
GRAD_SHARED = dict(sgd=True, seed=0, inner_batch=25, learning_rate=0.003, meta_step_final=0.0,
                   meta_iters=40000, eval_batch=25, eval_iters=5, eval_interval=1)
GRAD = {
    "g1": (1, 5, 0.25, "reptile"),
    "g1_g2": (2, 10, 0.25, "reptile"),
    "half_g1_g2": (2, 10, 0.125, "reptile"),
    "g2": (2, 10, 0.25, "foml"),
    "g1_g2_g3": (3, 15, 0.25, "reptile"),
    "third_g1_g2_g3": (3, 15, 0.08325, "reptile"),
    "g3": (3, 15, 0.25, "foml"),
    "g4": (4, 20, 0.25, "foml"),
    "g1_g2_g3_g4": (4, 20, 0.25, "reptile"),
    "fourth_g1_g2_g3_g4": (4, 20, 0.0625, "reptile"),
}


def _expected(dataset: str, checkpoint: str) -> Config:
    """The configuration a README command claims: its paper preset, or the gradient table."""
    base = dict(dataset=dataset, data_dir=f"data/{dataset}", checkpoint=checkpoint)
    name = checkpoint[len("ckpt_"):] if checkpoint.startswith("ckpt_") else None
    if name in PRESETS:
        assert PRESETS[name][0] == dataset
        return Config.from_flat(**base, **PRESETS[name][1])
    inner_iters, train_shots, meta_step, algorithm = GRAD[checkpoint.removesuffix("_ckpt")]
    return Config.from_flat(**base, **GRAD_SHARED, inner_iters=inner_iters,
                            train_shots=train_shots, meta_step=meta_step, algorithm=algorithm)


def test_the_commands_are_the_eight_presets_and_ten_gradient_combinations():
    names = [args[args.index("--checkpoint") + 1] for _, args in COMMANDS]
    assert sorted(names) == sorted([f"ckpt_{p}" for p in PRESETS] + [f"{g}_ckpt" for g in GRAD])


@pytest.mark.parametrize("dataset,args", COMMANDS, ids=[a[a.index("--checkpoint") + 1]
                                                        for _, a in COMMANDS])
def test_readme_command_parses_to_its_configuration(dataset, args):
    config = parse_args(args, dataset)
    assert config == _expected(dataset, config.run.checkpoint)
    # The same through a preset: only the checkpoint differs.
    name = config.run.checkpoint[len("ckpt_"):]
    if name in PRESETS:
        assert parse_args(["--preset", name, "--checkpoint", config.run.checkpoint],
                          dataset) == config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    # 25 characters: 5 for training (20 classes with rotations), 20 for the
    # 20-way test split; 20 drawings for --train-shots 20.
    return {"omniglot": make_omniglot(root / "omniglot", alphabets=5, characters=5),
            "miniimagenet": make_miniimagenet(root / "mini", classes=(5, 5, 5), images=16)}


@pytest.mark.slow
@pytest.mark.parametrize("dataset,args", COMMANDS, ids=[a[a.index("--checkpoint") + 1]
                                                        for _, a in COMMANDS])
def test_readme_command_runs(dataset, args, data, tmp_path):
    config = parse_args(args, dataset)
    assert config.meta.meta_iters in (40000, 100000, 200000)  # the command as written
    # Shortened where it costs time (iterations, evaluation tasks and steps).
    extra = ["--meta-iters", "2", "--eval-samples", "2", "--eval-iters", "5",
             "--data-dir", data[dataset],
             "--checkpoint", str(tmp_path / config.run.checkpoint)]
    if dataset == "omniglot":
        extra += ["--train-characters", "5"]
    lines = []
    results = experiment.run(parse_args(args + extra, dataset), log_fn=lines.append)
    # Image datasets with splits first say where their images came from.
    start = lines.index("Training...")
    assert (start == 0) == (dataset == "omniglot"), lines
    assert all(line.startswith(("Decoded ", "Loaded miniimagenet ")) for line in lines[:start])
    assert lines[start + 1].startswith("batch 0: train=")
    assert set(results) == ({"train", "test"} if dataset == "omniglot"
                            else {"train", "val", "test"})
    assert os.path.exists(tmp_path / config.run.checkpoint / "model.ckpt-1.index")
