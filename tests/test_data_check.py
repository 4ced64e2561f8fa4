"""`python -m supervised_reptile.check_data` on good, half-downloaded and corrupt data."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, make_miniimagenet, make_omniglot
from supervised_reptile import cli
from supervised_reptile.data import check as check_data


def _report(*argv):
    lines = []
    code = check_data.report(*argv, log_fn=lines.append)
    return code, lines


def test_usable_omniglot_subset_gets_notes_not_problems(tmp_path):
    data = make_omniglot(tmp_path / "o", alphabets=2, characters=3)
    code, lines = _report(data)
    assert code == 0
    assert lines[:2] == [f"omniglot in {data}", "  2 alphabets, 6 characters, 120 images"]
    assert lines[2].startswith("note: 6 characters found; the original sets have 1623")
    assert lines[-1] == "usable: no problems found, 1 note(s); 120 images opened"


def test_corrupt_and_missing_images_are_named(tmp_path):
    data = make_omniglot(tmp_path / "o", alphabets=1, characters=3)
    char = os.path.join(data, "Alphabet_0", "character02")
    bad = os.path.join(char, sorted(os.listdir(char))[0])
    open(bad, "wb").write(b"<!DOCTYPE html><title>rate limited</title>")
    for f in os.listdir(os.path.join(data, "Alphabet_0", "character03")):
        os.remove(os.path.join(data, "Alphabet_0", "character03", f))
    code, lines = _report(data)
    assert code == 1
    assert f"problem: skipped unreadable image {bad!r}: it is an HTML/XML page, not an image " \
           "(a failed download saved as an image?)" in lines
    assert f"problem: class {os.path.dirname(char)}/character03 has no .png images" in lines
    assert any(l.startswith("note: 1 character classes do not have the original's 20 images: "
                            ) and "character03 (0)" in l for l in lines)
    assert lines[-1] == "2 problem(s), 2 note(s); 40 images opened"


def test_half_downloaded_miniimagenet(tmp_path):
    data = make_miniimagenet(tmp_path / "mini", classes=(3, 2, 2), images=4)
    code, lines = _report(data, None, False)
    assert code == 0 and lines[0] == f"miniimagenet in {data}"
    assert "  train: 3 classes, 12 images" in lines
    assert "note: split train has 3 classes; the original has 64" in lines
    assert lines[-1].endswith("images not opened (`no_decode`)")
    os.makedirs(tmp_path / ".fetch_tmp.abc123")
    code, lines = _report(data, None, False)
    assert code == 1
    assert any(".fetch_tmp.abc123 (safe to delete)" in l for l in lines)
    shutil.rmtree(os.path.join(data, "val"))
    with pytest.raises(FileNotFoundError, match=r"has no val/ \(expected train/, val/ and test/\)"
                       r": a half-finished download"):
        check_data.report(data, log_fn=lambda _: None)


def test_command_line_exit_statuses(tmp_path, capsys):
    assert cli.check_data_main([str(tmp_path / "none")]) == 2
    assert "does not exist; download it with `./fetch_data.sh omniglot`" in capsys.readouterr().err
    data = make_miniimagenet(tmp_path / "mini", classes=(2, 2, 2), images=3)
    out = subprocess.run([sys.executable, "-m", "supervised_reptile.check_data", data,
                          "--dataset", "miniimagenet"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    # 3 class counts + 3 image counts + the split check: a header, 6 unknown classes, the
    # missing standard classes.
    assert lines[-1] == "usable: no problems found, 14 note(s); 18 images opened"
    assert "  form: the original's layout, {train,val,test}/<wnid>/*.JPEG" in lines


@pytest.mark.slow
def test_skip_bad_images_trains_without_the_file_and_names_it(tmp_path, capsys):
    data = make_omniglot(tmp_path / "o", alphabets=3, characters=4)
    bad = os.path.join(data, "Alphabet_1", "character02", "0101_03.png")
    open(bad, "wb").write(os.urandom(100))
    argv = ["--data-dir", data, "--train-characters", "6", "--classes", "3", "--meta-iters", "2",
            "--inner-iters", "1", "--eval-iters", "1", "--eval-samples", "1", "--checkpoint",
            str(tmp_path / "ck")]
    assert cli.main(argv, "omniglot") == 2
    assert cli.main(argv + ["--skip-bad-images"], "omniglot") == 0
    err = capsys.readouterr().err
    assert f"warning: skipped unreadable image {bad!r}" in err
    assert os.path.exists(tmp_path / "ck" / "model.ckpt-1.index")


def test_an_alphabet_or_a_character_folder_names_the_folder_to_pass(tmp_path):
    data = make_omniglot(tmp_path / "o", alphabets=2, characters=2)
    alphabet = os.path.join(data, "Alphabet_0")
    with pytest.raises(FileNotFoundError, match=r"looks like one alphabet .*pass its parent, "
                       r"`data_dir` " + re.escape(os.path.abspath(data))):
        check_data.scan_omniglot(alphabet)
    with pytest.raises(FileNotFoundError, match=r"looks like one character .*`data_dir` "
                       + re.escape(os.path.abspath(data))):
        check_data.scan_omniglot(os.path.join(alphabet, "character01"))
