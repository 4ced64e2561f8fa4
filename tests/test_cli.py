"""The one exception -> exit-status table of `cli`, one test per status."""

import os
import signal

import pytest

from conftest import make_omniglot
from supervised_reptile import cli, experiment, guard


def test_ok_is_0(tmp_path, capsys):
    data = make_omniglot(tmp_path / "o", alphabets=2, characters=2, drawings=3)
    assert cli.check_data_main([data, "--no-decode"]) == cli.OK == 0
    assert "usable: no problems found" in capsys.readouterr().out


def test_problems_found_by_check_data_are_1(tmp_path, capsys):
    data = make_omniglot(tmp_path / "o", alphabets=2, characters=2, drawings=3)
    os.makedirs(os.path.join(os.path.dirname(data), ".fetch_tmp.abc123"))
    assert cli.check_data_main([data, "--no-decode"]) == 1
    assert "problem: leftover of an interrupted fetch_data.sh run" in capsys.readouterr().out


def test_bad_flag_syntax_is_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--meta-batch", "many"], "omniglot")
    assert exc.value.code == cli.BAD_INPUT == 2


def test_bad_data_dir_is_2(tmp_path, capsys):
    status = cli.main(["--data-dir", str(tmp_path / "nowhere"), "--checkpoint",
                       str(tmp_path / "ck")], "omniglot")
    assert status == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("dataset", ["omniglot", "miniimagenet"])
def test_a_run_without_data_leaves_no_checkpoint_folder(tmp_path, capsys, dataset):
    """Nor the parents it would have created; a folder that was there stays."""
    for checkpoint in (tmp_path / "new" / "ck", tmp_path):
        assert cli.main(["--data-dir", str(tmp_path / "nowhere"), "--checkpoint",
                         str(checkpoint)], dataset) == 2
        assert "error: " in capsys.readouterr().err
        assert not os.path.exists(tmp_path / "new")
        assert os.path.isdir(tmp_path)


def test_bad_flag_value_is_2(tmp_path, capsys):
    assert cli.main(["--weight-decay", "2", "--checkpoint", str(tmp_path / "ck")],
                    "omniglot") == 2
    assert "error: --weight-decay 2.0 must be in (0, 1]" in capsys.readouterr().err


def test_missing_export_source_and_predict_folders_are_2(tmp_path, capsys):
    assert cli.export_main(["--checkpoint", str(tmp_path), "--export", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint must be a training run's folder" in err
    assert not os.path.exists(tmp_path / "x")
    assert cli.check_data_main([str(tmp_path / "none")]) == 2


@pytest.mark.parametrize("error", [guard.NonFiniteLoss("loss is nan at iteration 3"),
                                   guard.CheckpointWriteError("disk full"),
                                   guard.WorkerLostError("worker 1 is gone")])
def test_training_failures_are_1(monkeypatch, capsys, error):
    def run(config, log_fn):
        raise error
    monkeypatch.setattr(experiment, "run", run)
    assert cli.main([], "omniglot") == cli.FAILED == 1
    assert capsys.readouterr().err == f"error: {error}\n"


def test_ctrl_c_is_130(monkeypatch, capsys):
    def interrupted(config, log_fn):
        raise guard.Interrupted(7)
    monkeypatch.setattr(experiment, "run", interrupted)
    assert cli.main(["--checkpoint", "ck"], "omniglot") == cli.INTERRUPTED == 130
    assert capsys.readouterr().err == f"{guard.Interrupted(7)} in 'ck'\n"

    def second_ctrl_c(config, log_fn):
        raise KeyboardInterrupt
    monkeypatch.setattr(experiment, "run", second_ctrl_c)
    assert cli.main([], "omniglot") == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_sigterm_is_143(monkeypatch, capsys):
    def terminated(config, log_fn):
        raise guard.Interrupted(7, signal.SIGTERM)
    monkeypatch.setattr(experiment, "run", terminated)
    assert cli.main(["--checkpoint", "ck"], "omniglot") == cli.TERMINATED == 143
    assert capsys.readouterr().err == ("interrupted by SIGTERM: stopped after meta-iteration 7 "
                                       "and wrote its checkpoint in 'ck'\n")

    def second_signal(config, log_fn):
        raise guard.Terminated
    monkeypatch.setattr(experiment, "run", second_signal)
    assert cli.main([], "omniglot") == 143
    assert capsys.readouterr().err == "error: terminated (SIGTERM)\n"


def test_help_does_not_import_tensorflow():
    import subprocess
    import sys
    code = ("import sys; from supervised_reptile import cli\n"
            "try:\n    cli.main(['--help'], 'omniglot')\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
