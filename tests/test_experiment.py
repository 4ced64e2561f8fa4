"""The run scripts as users run them: real subprocesses, checkpoints and event files."""

import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REPO, make_miniimagenet, make_omniglot


def _run(script, *args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(REPO, script), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def _accuracies(path):
    acc = EventAccumulator(path, size_guidance={"tensors": 0})
    acc.Reload()
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("accuracy")}


FAST = ["--meta-iters", "12", "--eval-interval", "5", "--eval-samples", "6",
        "--eval-iters", "3", "--inner-iters", "2", "--meta-batch", "2"]


@pytest.mark.slow
def test_omniglot_train_checkpoint_events_and_pretrained(tmp_path):
    data = make_omniglot(tmp_path / "omni", alphabets=3, characters=5)
    out = _run("run_omniglot.py", "--data-dir", data, "--train-characters", "10",
               "--checkpoint", "ck", "--shots", "1", "--train-shots", "3", *FAST, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Training..."
    assert [l.split(":")[0] for l in lines[1:4]] == ["batch 0", "batch 5", "batch 10"]
    assert all(re.fullmatch(r"batch \d+: train=\d\.\d{6} test=\d\.\d{6}", l) for l in lines[1:4])
    assert lines[4] == "Evaluating..."
    train_acc = re.fullmatch(r"Train accuracy: ([0-9.]+)", lines[5]).group(1)
    test_acc = re.fullmatch(r"Test accuracy: ([0-9.]+)", lines[6]).group(1)
    ck = tmp_path / "ck"
    assert sorted(p for p in os.listdir(ck) if p.endswith(".index")) == \
        ["model.ckpt-0.index", "model.ckpt-11.index"]
    assert json.loads((ck / "config.json").read_text())["data"]["train_characters"] == 10
    # The checkpoint holds the inner Adam state: 12 iterations x 2 tasks x 2 steps.
    reader = tf.train.load_checkpoint(str(ck / "model.ckpt-11"))
    assert reader.get_tensor("optimizer/step/.ATTRIBUTES/VARIABLE_VALUE") == 48
    assert reader.get_tensor("optimizer/v/0/.ATTRIBUTES/VARIABLE_VALUE").any()
    for split in ("train", "test"):
        accs = _accuracies(str(ck / split))
        assert sorted(accs) == [0, 5, 10]
        assert all(a in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) for a in map(lambda a: round(a, 6),
                                                                      accs.values()))
    printed = {int(l.split()[1][:-1]): float(l.split("test=")[1]) for l in lines[1:4]}
    assert {k: round(v, 6) for k, v in _accuracies(str(ck / "test")).items()} == printed

    # --pretrained re-evaluates the last checkpoint on the same tasks: same numbers.
    again = _run("run_omniglot.py", "--data-dir", data, "--train-characters", "10",
                 "--checkpoint", "ck", "--shots", "1", "--pretrained", *FAST, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[:4] == ["Restoring from checkpoint...", "Evaluating...",
                                             f"Train accuracy: {train_acc}",
                                             f"Test accuracy: {test_acc}"]
    assert [l.split(":")[0] for l in again.stdout.splitlines()[4:]] == \
        ["Train accuracy 95% CI", "Test accuracy 95% CI"]


@pytest.mark.slow
def test_miniimagenet_runs_on_generated_jpegs(tmp_path):
    """A transductive FOML run: the flags must reach the learner, not just the log."""
    data = make_miniimagenet(tmp_path / "mini", classes=(4, 3, 3), images=5)
    common = ["--data-dir", data, "--classes", "3", "--shots", "2", "--train-shots", "3",
              "--inner-batch", "4", "--eval-batch", "3", *FAST]
    out = _run("run_miniimagenet.py", *common, "--checkpoint", "ck", "--transductive", "--foml",
               "--eval-results", "results.json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    # The first run decodes the images into the store, then says where they came from.
    assert out.stdout.startswith("Decoded the original's layout")
    lines = out.stdout.splitlines()
    assert lines[1].startswith("Loaded miniimagenet from the store ")
    lines = lines[2:]
    assert lines[0] == "Training..." and lines[4] == "Evaluating..."
    assert [l.split(":")[0] for l in lines[5:8]] == ["Train accuracy", "Validation accuracy",
                                                    "Test accuracy"]
    assert os.path.exists(tmp_path / "ck" / "model.ckpt-11.index")
    saved = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert saved["meta"]["algorithm"] == "foml" and saved["task"]["transductive"] is True
    # The printed evaluation is a transductive one of the saved weights, task by task.
    from supervised_reptile import build, checkpoints, config as config_lib, episodes
    from supervised_reptile.evaluate import evaluate
    config = config_lib.from_dict(saved, data_dir=data, checkpoint=str(tmp_path / "ck"))
    algorithm = build.build_algorithm(config)
    assert algorithm.transductive and type(algorithm).__name__ == "FOML"
    checkpoints.RunCheckpoint(config.run.checkpoint, algorithm.model,
                              algorithm.optimizer).restore(lambda _: None)
    _, spec = build.task_specs(config)
    test = build.load_samplers(config)["test"]
    counts = evaluate(algorithm, episodes.eval_dataset(test, spec, config.run.seed,
                                                       episodes.FINAL_EVAL_STREAM + 2, 6), 6, 1)
    results = json.loads((tmp_path / "results.json").read_text())["splits"]["test"]
    assert counts[:, -1].tolist() == results["correct"]
    # Reptile from the same seed and tasks ends elsewhere: --foml changed the update.
    reptile = _run("run_miniimagenet.py", *common, "--checkpoint", "ck_reptile",
                   "--transductive", cwd=tmp_path)
    assert reptile.returncode == 0, reptile.stderr
    a = tf.train.load_checkpoint(str(tmp_path / "ck" / "model.ckpt-11"))
    b = tf.train.load_checkpoint(str(tmp_path / "ck_reptile" / "model.ckpt-11"))
    name = next(k for k in a.get_variable_to_shape_map() if k.startswith("model/") and "kernel" in k)
    assert not (a.get_tensor(name) == b.get_tensor(name)).all()


@pytest.mark.slow
def test_pretrained_without_checkpoint_is_a_clear_error(tmp_path):
    data = make_omniglot(tmp_path / "omni", alphabets=1, characters=8)
    out = _run("run_omniglot.py", "--data-dir", data, "--train-characters", "6", "--pretrained",
               "--checkpoint", "nothing", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "error: --pretrained: no checkpoint in 'nothing'"


@pytest.mark.slow
def test_foml_tail_with_one_inner_iteration_is_refused(tmp_path):
    out = _run("run_omniglot.py", "--foml", "--foml-tail", "1", "--inner-iters", "1",
               "--data-dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2
    assert "--foml-tail needs --inner-iters >= 2" in out.stderr


@pytest.mark.slow
def test_a_finished_run_run_again_says_so_and_trains_further_when_asked(tmp_path, capsys):
    from supervised_reptile import cli
    data = make_omniglot(tmp_path / "omni", alphabets=3, characters=4)
    ck, results = str(tmp_path / "ck"), tmp_path / "results.json"
    argv = ["--data-dir", data, "--checkpoint", ck, "--eval-results", str(results),
            "--train-characters", "6", "--classes", "3", "--shots", "1", "--train-shots", "3",
            "--inner-batch", "3", "--inner-iters", "2", "--eval-batch", "3", "--eval-iters", "2",
            "--eval-samples", "2", "--checkpoint-interval", "1"]
    assert cli.main(argv + ["--meta-iters", "2"], "omniglot") == 0
    assert "Evaluating..." in capsys.readouterr().out
    os.remove(results)

    assert cli.main(argv + ["--meta-iters", "2"], "omniglot") == 0
    assert capsys.readouterr().out == (
        f"{ck} already finished 2 meta-iterations; nothing to train. Pass --pretrained to "
        "evaluate it again, --meta-iters N (more than 2) to train further, or --restart to "
        "start over.\n")
    assert not results.exists()  # not evaluated again

    # More meta-iterations continue where it stopped (with the longer annealing schedule).
    assert cli.main(argv + ["--meta-iters", "4"], "omniglot") == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"Resuming from {ck}/model.ckpt-1 at iteration 2" in lines
    assert lines.index("Training...") < lines.index("Evaluating...")
    assert tf.train.latest_checkpoint(ck).endswith("model.ckpt-3") and results.exists()
