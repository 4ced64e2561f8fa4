"""Exact resume: what a checkpoint holds, the compatibility check, --restart, and a run
killed with SIGKILL and resumed (bit-for-bit the same final weights)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, TINY_RUN_FLAGS, run_script
from supervised_reptile import flags, checkpoints, config as config_lib, models
from supervised_reptile.config import Config
from supervised_reptile.optimizers import Adam


def _run_checkpoint(directory, classes=3):
    model = models.build_omniglot_model(classes, seed=0)
    optimizer = Adam(1e-3)
    optimizer.build(model.trainable_variables)
    return checkpoints.RunCheckpoint(str(directory), model, optimizer), model, optimizer


def _training_tensors(path):
    """name -> value of everything a meta-iteration depends on."""
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith(("model/", "optimizer/", "iteration"))}


def test_mismatches_name_the_flags_and_allow_evaluation_changes():
    saved = dataclasses.asdict(Config.from_flat(classes=5, meta_iters=100, eval_samples=10))
    now = Config.from_flat(classes=20, sgd=True, meta_iters=500, eval_samples=99,
                           transductive=True)
    diffs = checkpoints.mismatches(saved, now)
    assert diffs == ["`classes` was 5 in the checkpoint's run, is 20 now",
                     "`sgd` was False in the checkpoint's run, is True now"]
    # The command line names them by their flags.
    assert flags.for_users(diffs[0]) == "--classes was 5 in the checkpoint's run, is 20 now"
    # Fields a saved config lacks (an older version) count as their defaults.
    assert checkpoints.mismatches({}, Config()) == []


def test_incompatible_checkpoint_is_refused_with_one_line(tmp_path):
    config_lib.save(Config.from_flat(classes=5, algorithm="foml"), str(tmp_path))
    with pytest.raises(ValueError) as err:
        checkpoints.check_compatible(str(tmp_path), Config.from_flat(classes=5))
    message = flags.for_users(str(err.value))
    assert "\n" not in message
    assert "--foml was True in the checkpoint's run, is False now" in message
    assert "--restart" in message
    # --pretrained only needs the variables to fit.
    checkpoints.check_compatible(str(tmp_path), Config.from_flat(classes=5),
                                 checkpoints.STRUCTURE_FIELDS)


def test_a_flat_config_json_of_an_earlier_version_is_still_compared(tmp_path):
    # Earlier versions wrote every field flat, with the foml/maml switches.
    old = dict(Config.from_flat(classes=5, seed=3).flat(), foml=True, maml=False)
    del old["algorithm"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    same = Config.from_flat(classes=5, seed=3, algorithm="foml", eval_samples=7)
    checkpoints.check_compatible(str(tmp_path), same)
    with pytest.raises(ValueError, match="`foml` was True in the checkpoint's run, is False now"):
        checkpoints.check_compatible(str(tmp_path), same.replace(algorithm="reptile"))
    with pytest.raises(ValueError, match="`maml` was False in the checkpoint's run, is True now"):
        checkpoints.check_compatible(str(tmp_path), same.replace(algorithm="maml"),
                                     checkpoints.STRUCTURE_FIELDS)


def test_an_unreadable_config_json_names_the_way_out(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read .*; use `restart` to start over") as err:
        checkpoints.check_compatible(str(tmp_path), Config())
    assert flags.for_users(str(err.value)).endswith("; use --restart to start over")


def test_save_and_restore_carry_the_iteration_and_optimizer_state(tmp_path):
    ck, model, optimizer = _run_checkpoint(tmp_path)
    optimizer.step.assign(7.0)
    ck.save(41)
    assert os.path.exists(tmp_path / "model.ckpt-41.index")
    fresh, model2, optimizer2 = _run_checkpoint(tmp_path)
    path, start = fresh.restore()
    assert (os.path.basename(path), start) == ("model.ckpt-41", 42)
    assert optimizer2.step.numpy() == 7.0
    for a, b in zip(model.variables, model2.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unreadable_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    ck, model, _ = _run_checkpoint(tmp_path)
    ck.save(0)
    model.trainable_variables[0].assign_add(tf.ones_like(model.trainable_variables[0]))
    ck.save(1)
    with open(tmp_path / "model.ckpt-1.data-00000-of-00001", "r+b") as f:
        f.truncate(100)  # as if the disk lost the end of the newest checkpoint
    warnings = []
    path, start = _run_checkpoint(tmp_path)[0].restore(warnings.append)
    assert (os.path.basename(path), start) == ("model.ckpt-0", 1)
    assert len(warnings) == 1 and "model.ckpt-1" in warnings[0]
    with open(tmp_path / "model.ckpt-0.data-00000-of-00001", "r+b") as f:
        f.truncate(100)
    with pytest.raises(ValueError, match="no readable checkpoint"):
        _run_checkpoint(tmp_path)[0].restore(lambda _: None)


def test_a_model_of_another_shape_is_refused(tmp_path):
    _run_checkpoint(tmp_path, classes=3)[0].save(0)
    with pytest.raises(ValueError, match="no readable checkpoint"):
        _run_checkpoint(tmp_path, classes=4)[0].restore(lambda _: None)


def test_restart_deletes_only_the_runs_files(tmp_path):
    ck, _, _ = _run_checkpoint(tmp_path)
    ck.save(0)
    config_lib.save(Config.from_flat(checkpoint=str(tmp_path)), str(tmp_path))
    os.makedirs(tmp_path / "train")
    (tmp_path / "train" / "events.out.tfevents.1.x.v2").write_text("")
    (tmp_path / "notes.txt").write_text("mine")
    ck = _run_checkpoint(tmp_path)[0]
    lines = []
    start = checkpoints.prepare(ck, Config.from_flat(checkpoint=str(tmp_path), restart=True),
                                lines.append)
    assert start == 0 and ck.latest is None
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "train"]
    assert os.listdir(tmp_path / "train") == []
    assert lines == [f"Restarting: deleted the previous run in {tmp_path}"]


def test_mismatched_run_is_refused_by_the_script(tiny_run):
    out = run_script("run_omniglot.py", "--data-dir", tiny_run["data"], "--checkpoint", "ck",
                     *TINY_RUN_FLAGS, "--inner-batch", "3", cwd=tiny_run["root"])
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the checkpoint in 'ck' is from an incompatible configuration")
    assert "--inner-batch was 5 in the checkpoint's run, is 3 now" in last


# Writes checkpoints back to back (every weight and Adam's step = the iteration) until
# killed; a wide logits layer (5M floats) makes each write last long enough to be hit.
_SAVER = r"""
import sys
import tensorflow as tf
from supervised_reptile import checkpoints, models
from supervised_reptile.optimizers import Adam
model = models.build_omniglot_model(20000, seed=0)
optimizer = Adam(1e-3)
optimizer.build(model.trainable_variables)
ck = checkpoints.RunCheckpoint(sys.argv[1], model, optimizer)
for i in range(10**9):
    for v in model.trainable_variables:
        v.assign(tf.fill(v.shape, float(i)))
    optimizer.step.assign(float(i))
    ck.save(i)
"""


@pytest.mark.slow
def test_kill_during_a_checkpoint_write_leaves_a_consistent_checkpoint(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(tmp_path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, partial = time.time() + 300, []
    while not partial and proc.poll() is None and time.time() < deadline:
        if _latest_number(tmp_path) >= 2:  # kill as soon as a write is under way
            partial = [n for n in os.listdir(tmp_path) if n.endswith("_temp")]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial, "no write in progress was seen"
    ck, model, optimizer = _run_checkpoint(tmp_path, classes=20000)
    path, start = ck.restore()
    assert start >= 3 and optimizer.step.numpy() == start - 1
    assert all(np.all(v.numpy() == start - 1) for v in model.trainable_variables)
    assert checkpoints.remove_partial_writes(str(tmp_path))
    assert not [n for n in os.listdir(tmp_path) if n.endswith("_temp")]


def _latest_number(directory):
    try:
        with open(os.path.join(directory, "checkpoint")) as f:
            first = f.readline()
    except OSError:
        return -1
    return int(first.rsplit("-", 1)[1].strip().strip('"')) if "ckpt-" in first else -1


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_same_weights(tiny_run, tmp_path):
    args = [os.path.join(REPO, "run_omniglot.py"), "--data-dir", tiny_run["data"],
            "--checkpoint", "ck", *TINY_RUN_FLAGS]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 300
    # A checkpoint is written after every iteration: killing right after one
    # appears lands in the next iteration or in the middle of the next save.
    while _latest_number(tmp_path / "ck") < 8 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    killed_out, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    first = resumed.stdout.splitlines()[0]
    assert first.startswith("Resuming from ck/model.ckpt-") and " at iteration " in first
    start = int(first.rsplit(" ", 1)[1])
    assert 9 <= start < 20
    expected = _training_tensors(os.path.join(tiny_run["checkpoint"], "model.ckpt-19"))
    got = _training_tensors(str(tmp_path / "ck" / "model.ckpt-19"))
    assert sorted(got) == sorted(expected) and len(got) > 20
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
    # Monitoring after the resume evaluates the same tasks as the uninterrupted run.
    uninterrupted = tiny_run["result"].stdout.splitlines()
    batch_lines = [l for l in resumed.stdout.splitlines() if l.startswith("batch ")]
    assert batch_lines and set(batch_lines) <= set(uninterrupted)
    assert set(killed_out.splitlines()) <= set(uninterrupted)
    assert [l for l in resumed.stdout.splitlines() if "accuracy" in l] == \
        [l for l in uninterrupted if "accuracy" in l]
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["meta"]["meta_iters"] == 20
