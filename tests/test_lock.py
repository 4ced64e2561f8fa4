"""The lock on a checkpoint folder: real processes hold it, killed ones drop it."""

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from conftest import REPO, make_omniglot
from supervised_reptile import lock


def _env():
    return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")


def _holder(folder):
    """A process that takes the lock on `folder`, says so and sleeps."""
    code = ("import sys, time; from supervised_reptile import lock\n"
            "with lock.hold(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], env=_env(),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    folder = tmp_path / "ck"
    proc = _holder(folder)
    try:
        with pytest.raises(lock.FolderInUse) as exc:
            with lock.hold(str(folder)):
                pass
        assert re.fullmatch(
            rf"`checkpoint` '{re.escape(str(folder))}' is in use by another run \(pid {proc.pid} on host "
            rf"{re.escape(socket.gethostname())}, started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d"
            r"[+-]\d\d:\d\d\); wait for it to finish or stop it, or pass another `checkpoint`",
            str(exc.value)), str(exc.value)
        assert proc.poll() is None and os.path.isdir(folder)  # the holder is undisturbed
        # A killed holder leaves its file behind, but no lock: the next run takes it over.
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert json.loads((folder / lock.LOCK_FILE).read_text())["pid"] == proc.pid
        with lock.hold(str(folder)):
            details = json.loads((folder / lock.LOCK_FILE).read_text())
            assert details["pid"] == os.getpid()
            assert details["host"] == socket.gethostname()
            with pytest.raises(lock.FolderInUse, match=f"pid {os.getpid()} "):
                with lock.hold(str(folder)):  # the same process, a second open: refused too
                    pass
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_file_its_holder_has_not_filled_in_yet(tmp_path):
    with lock.hold(str(tmp_path)):
        os.truncate(tmp_path / lock.LOCK_FILE, 0)
        with pytest.raises(lock.FolderInUse, match=r"another run \(a process that has not "):
            with lock.hold(str(tmp_path)):
                pass


def test_release_removes_the_folders_it_created_only_while_empty(tmp_path):
    with lock.hold(str(tmp_path / "a" / "b")):
        assert os.path.exists(tmp_path / "a" / "b" / lock.LOCK_FILE)
    assert os.listdir(tmp_path) == []  # nothing was written: a, b and the lock file are gone

    with pytest.raises(RuntimeError):
        with lock.hold(str(tmp_path / "a" / "b")):
            raise RuntimeError("a corrupt image")
    assert os.listdir(tmp_path) == []

    with lock.hold(str(tmp_path / "a" / "b")):
        (tmp_path / "a" / "b" / "config.json").write_text("{}")
    assert os.listdir(tmp_path / "a" / "b") == ["config.json"]

    (tmp_path / "old").mkdir()
    with lock.hold(str(tmp_path / "old")):
        pass
    assert os.path.isdir(tmp_path / "old")  # it was there before


def test_a_file_system_without_locks_warns_and_runs(tmp_path, monkeypatch, capsys):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(lock.fcntl, "flock", no_locks)
    with lock.hold(str(tmp_path / "ck")):
        pass
    assert "warning: cannot lock" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "ck")


TINY = ["--train-characters", "6", "--classes", "3", "--shots", "1", "--train-shots", "3",
        "--inner-batch", "3", "--inner-iters", "2", "--eval-batch", "3", "--eval-iters", "2",
        "--eval-samples", "2", "--eval-interval", "3"]


@pytest.mark.slow
def test_two_training_runs_on_one_folder(tmp_path):
    """The second refuses at once with exit status 2; the first trains on undisturbed."""
    data = make_omniglot(tmp_path / "omni", alphabets=3, characters=4)
    command = [sys.executable, "-u", os.path.join(REPO, "run_omniglot.py"), "--data-dir", data,
               *TINY, "--checkpoint", "ck"]
    first = subprocess.Popen(command + ["--meta-iters", "100000"], cwd=tmp_path, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in first.stdout:
            if line.startswith("batch 3:"):
                break
        second = subprocess.run(command + ["--meta-iters", "5"], cwd=tmp_path, env=_env(),
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr
        assert second.stdout == ""  # refused before loading any data
        assert re.fullmatch(
            rf"error: --checkpoint 'ck' is in use by another run \(pid {first.pid} on host "
            rf"{re.escape(socket.gethostname())}, started [0-9T:+-]+\); wait for it to finish "
            r"or stop it, or pass another --checkpoint", second.stderr.strip().splitlines()[-1])
        for line in first.stdout:  # the first one still trains
            if line.startswith("batch 9:"):
                break
        assert first.poll() is None
    finally:
        first.kill()
        first.wait()
    # Killed: its lock file stays, without a lock; a new run is not blocked.
    assert os.path.exists(tmp_path / "ck" / lock.LOCK_FILE)
    third = subprocess.run(command + ["--meta-iters", "1", "--restart"], cwd=tmp_path,
                           env=_env(), capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert not os.path.exists(tmp_path / "ck" / lock.LOCK_FILE)
