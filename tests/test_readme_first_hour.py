"""The README's path for a new user, as written: the first Omniglot command, then
export, the support/query folders built from `split.json`, and `predict`
(shortened to a few iterations, on generated characters laid out as
`data/omniglot_small`)."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO, make_omniglot
from supervised_reptile.flags import parse_args

README = open(os.path.join(REPO, "README.md")).read()


def _first_omniglot_command() -> list[str]:
    section = README.split("## First Omniglot run")[1].split("\n## ")[0]
    command = re.search(r"python run_omniglot\.py (.*?)\n```", section, re.S).group(1)
    return shlex.split(command.replace("\\\n", " "))


def _export_and_predict_block() -> str:
    section = README.split("**Export and predict.**")[1]
    return section.split("```\n", 1)[1].split("```", 1)[0]


def test_the_first_omniglot_command_is_the_preset_shortened():
    config = parse_args(_first_omniglot_command(), "omniglot")
    assert config.data.data_dir == "data/omniglot_small"
    assert (config.task.shots, config.task.classes, config.task.transductive) == (1, 5, True)
    assert (config.meta.meta_iters, config.eval.eval_samples) == (1000, 200)
    assert config.data.train_characters == 100 < 136  # the subset's characters


@pytest.mark.slow
def test_first_run_then_export_and_predict_as_written(tmp_path):
    make_omniglot(tmp_path / "data" / "omniglot_small", alphabets=6, characters=20)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    # Fewer iterations, tasks and inner steps: the SavedModel then adapts with 5 steps too.
    argv = _first_omniglot_command() + ["--meta-iters", "3", "--eval-samples", "2",
                                        "--eval-iters", "5"]
    run = subprocess.run([sys.executable, os.path.join(REPO, "run_omniglot.py"), *argv],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Test accuracy:" in run.stdout
    # The README's block, with `python` meaning this interpreter.
    script = _export_and_predict_block().replace("python -m", f"{sys.executable} -m")
    script = script.replace("python - <<", f"{sys.executable} - <<")
    out = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [l for l in out.stdout.splitlines() if "\t" in l]
    support = sorted(os.listdir(tmp_path / "my_support"))
    assert len(support) == 5 and len(lines) == 5
    for line in lines:
        name, label, *scores = line.split("\t")
        assert label in support and len(scores) == 5
