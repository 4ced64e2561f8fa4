"""Non-finite losses, Ctrl-C, SIGTERM and checkpoint writes: real runs, real checkpoints."""

import errno
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO, default_sigint, make_omniglot
from supervised_reptile import cli, episodes, guard, models
from supervised_reptile.data import omniglot
from supervised_reptile.algorithms import Reptile
from supervised_reptile.optimizers import make_optimizer
from supervised_reptile.train import train

TINY = ["--train-characters", "6", "--classes", "3", "--shots", "1", "--train-shots", "3",
        "--inner-batch", "3", "--inner-iters", "2", "--eval-batch", "3", "--eval-iters", "2",
        "--eval-samples", "2"]


def _env():
    return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")


def test_check_finite_names_the_iteration():
    guard.check_finite({"inner_loss": tf.constant(1.5)}, 3)
    guard.check_finite(None, 3)  # algorithms that report nothing
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(guard.NonFiniteLoss, match=r"inner_loss is -?(nan|inf) at meta-"
                                                       r"iteration 41: training diverged"):
            guard.check_finite({"inner_loss": tf.constant(bad)}, 41)


def test_guarded_save_refuses_non_finite_weights_and_reports_write_failures(tmp_path):
    saved = []
    good = [tf.Variable([1.0, 2.0])]
    guard.guarded_save(saved.append, "ck", good)(5)
    assert saved == [5]
    with pytest.raises(guard.NonFiniteLoss, match="not finite at meta-iteration 6; not saving"):
        guard.guarded_save(saved.append, "ck", [tf.Variable([1.0, np.nan])])(6)
    assert saved == [5]

    def full_disk(i):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(guard.CheckpointWriteError, match=r"meta-iteration 7 to 'ck': OSError: "
                       r".*No space left on device \(disk full"):
        guard.guarded_save(full_disk, "ck", good)(7)


def test_checkpoint_manager_write_failure_is_reported(tmp_path):
    """A real `CheckpointManager` whose directory turned into a file mid-run."""
    ckpt = tf.train.Checkpoint(v=tf.Variable(1.0))
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path / "ck"), max_to_keep=2)
    save = guard.guarded_save(lambda i: manager.save(checkpoint_number=i), "ck", [ckpt.v])
    save(0)
    os.rename(tmp_path / "ck", tmp_path / "moved")
    (tmp_path / "ck").write_text("not a directory")
    with pytest.raises(guard.CheckpointWriteError, match="meta-iteration 1 to 'ck'"):
        save(1)


def test_checkpoint_dir_checked_before_training(tmp_path):
    guard.check_checkpoint_dir(str(tmp_path / "new" / "ck"))
    assert not os.path.exists(tmp_path / "new")  # created by the run's lock, not the check
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"^'.*file/ck' is not a writable directory"):
        guard.check_checkpoint_dir(str(tmp_path / "file" / "ck"))
    with pytest.raises(ValueError, match=r"MiB free; at least \d+ MiB are needed"):
        guard.check_checkpoint_dir(str(tmp_path), min_free_bytes=2**62)


class _Poisoned:
    """Real training tasks; from `at` on, the images are infinite."""

    def __init__(self, tasks, at):
        self.tasks, self.at, self.i = tasks, at, 0

    def __next__(self):
        batch = next(self.tasks)
        self.i += 1
        if self.i > self.at:
            batch = batch._replace(images=batch.images * np.inf)
        return batch


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    pool = omniglot.load_pool(omniglot.list_characters(
        make_omniglot(tmp_path / "o", alphabets=1, characters=4, drawings=4)))
    spec = episodes.TaskSpec(3, 3, 3, 2)
    algorithm = Reptile(models.build_omniglot_model(3, seed=0), make_optimizer("adam", 1e-3))
    ckpt = tf.train.Checkpoint(model=algorithm.model)
    manager = tf.train.CheckpointManager(ckpt, str(tmp_path / "ck"), max_to_keep=5)
    save = guard.guarded_save(lambda i: manager.save(checkpoint_number=i), "ck",
                              algorithm.model.trainable_variables)
    tasks = _Poisoned(iter(episodes.train_dataset(pool, spec, 0, 1)), at=3)
    with pytest.raises(guard.NonFiniteLoss, match="at meta-iteration 3:"):
        train(algorithm, tasks, {}, save, meta_iters=200, meta_step=1.0, meta_step_final=0.0,
              eval_interval=1000, num_classes=3, log_fn=lambda _: None)
    assert manager.checkpoints == [str(tmp_path / "ck" / "ckpt-0")]
    reader = tf.train.load_checkpoint(manager.latest_checkpoint)
    values = [reader.get_tensor(k) for k, _ in tf.train.list_variables(manager.latest_checkpoint)
              if k.startswith("model/")]
    assert values and all(np.isfinite(v).all() for v in values if v.dtype.kind == "f")


@pytest.mark.slow
def test_diverging_run_exits_1_naming_the_iteration_and_saves_nothing(tmp_path):
    data = make_omniglot(tmp_path / "omni", alphabets=3, characters=4)
    out = subprocess.run([sys.executable, os.path.join(REPO, "run_omniglot.py"), "--data-dir",
                          data, *TINY, "--learning-rate", "1e30", "--meta-iters", "5",
                          "--checkpoint", "ck"], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    # The loss or (fused batch norm + ReLU turn NaN activations into 0) only the weights.
    assert re.match(r"error: (inner_loss is nan|the meta-weights are not finite) at "
                    r"meta-iteration 0: training diverged", last), last
    assert not [f for f in os.listdir(tmp_path / "ck") if f.startswith("model.ckpt")]


@pytest.mark.slow
def test_ctrl_c_writes_a_final_readable_checkpoint_and_exits_130(tmp_path):
    data = make_omniglot(tmp_path / "omni", alphabets=3, characters=4)
    proc = subprocess.Popen([sys.executable, "-u", os.path.join(REPO, "run_omniglot.py"),
                             "--data-dir", data, *TINY, "--meta-iters", "100000",
                             "--eval-interval", "3", "--checkpoint", "ck"], cwd=tmp_path,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        for line in proc.stdout:
            if line.startswith("batch 6:"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    stopped = int(last.split("meta-iteration ")[1].split()[0])
    assert stopped >= 6
    assert last == f"interrupted: stopped after meta-iteration {stopped} and wrote its " \
                   "checkpoint in 'ck'"
    assert "Ctrl-C: stopping after this meta-iteration" in err
    ck = tf.train.latest_checkpoint(str(tmp_path / "ck"))
    assert ck.endswith(f"model.ckpt-{stopped}")
    model = models.build_omniglot_model(3, seed=1)
    tf.train.Checkpoint(model=model).restore(ck).expect_partial().assert_existing_objects_matched()
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_first_sigint_or_sigterm_requests_a_stop_and_a_second_quits(capsys):
    before = {s: signal.getsignal(s) for s in guard.STOP_SIGNALS}
    cases = [(signal.SIGTERM, signal.SIGTERM, guard.Terminated),
             (signal.SIGINT, signal.SIGTERM, guard.Terminated),
             (signal.SIGTERM, signal.SIGINT, KeyboardInterrupt)]
    if before[signal.SIGINT] is signal.SIG_IGN:  # pytest started in the background
        cases = cases[:1]
    for first, second, quits in cases:
        with guard.stop_on_signals() as stop:
            signal.raise_signal(first)
            assert stop.requested and stop.signum == first
            with pytest.raises(quits) as exc:
                signal.raise_signal(second)
            assert isinstance(exc.value, guard.Terminated) == (second == signal.SIGTERM)
    assert {s: signal.getsignal(s) for s in guard.STOP_SIGNALS} == before
    err = capsys.readouterr().err
    assert "SIGTERM: stopping after this meta-iteration and writing a checkpoint (send " \
           "SIGTERM again to quit at once)" in err
    assert len(cases) == 1 or "Ctrl-C: stopping after this meta-iteration" in err
    assert str(guard.Interrupted(4, signal.SIGTERM)) == \
        "interrupted by SIGTERM: stopped after meta-iteration 4 and wrote its checkpoint"


def _default_signals():
    """`preexec_fn`: SIGINT and SIGTERM with their default actions (see `default_sigint`)."""
    default_sigint()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.slow
def test_sigterm_writes_a_final_checkpoint_exits_143_and_the_run_resumes(tmp_path):
    """What a batch scheduler or a preempted cloud machine does: SIGTERM, then a restart."""
    data = make_omniglot(tmp_path / "omni", alphabets=3, characters=4)
    proc = subprocess.Popen([sys.executable, "-u", os.path.join(REPO, "run_omniglot.py"),
                             "--data-dir", data, *TINY, "--meta-iters", "100000",
                             "--eval-interval", "3", "--checkpoint", "ck"], cwd=tmp_path,
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)
    try:
        for line in proc.stdout:
            if line.startswith("batch 6:"):
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == cli.TERMINATED == 143, err
    last = err.strip().splitlines()[-1]
    stopped = int(last.split("meta-iteration ")[1].split()[0])
    assert stopped >= 6
    assert last == f"interrupted by SIGTERM: stopped after meta-iteration {stopped} and " \
                   "wrote its checkpoint in 'ck'"
    assert "SIGTERM: stopping after this meta-iteration" in err
    assert tf.train.latest_checkpoint(str(tmp_path / "ck")).endswith(f"model.ckpt-{stopped}")

    again = subprocess.run([sys.executable, os.path.join(REPO, "run_omniglot.py"), "--data-dir",
                            data, *TINY, "--meta-iters", str(stopped + 2), "--eval-interval",
                            "3", "--checkpoint", "ck"], cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"Resuming from ck/model.ckpt-{stopped} at iteration {stopped + 1}" in \
        again.stdout.splitlines()
    assert tf.train.latest_checkpoint(str(tmp_path / "ck")).endswith(
        f"model.ckpt-{stopped + 1}")
