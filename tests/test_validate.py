"""Bad input, table-driven: each row is a command or data defect, the message
fragment it must print and the exit status. Runs `cli.main` in-process (no
row gets as far as training), so the whole table takes seconds."""

import os
import shutil

import pytest

from conftest import make_miniimagenet, make_omniglot
from supervised_reptile import cli, validate
from supervised_reptile.data import check as check_data, registry
from supervised_reptile.config import Config

OMNI = ["--train-characters", "6"]  # 12 characters: train 6 x 4 rotations = 24 classes, test 6


def _first_png(root):
    for d, _, files in sorted(os.walk(root)):
        pngs = sorted(f for f in files if f.endswith((".png", ".JPEG")))
        if pngs:
            return os.path.join(d, pngs[0])


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])


def _write(path, data):
    open(path, "wb").write(data)


def _keep(root, n):
    """Leaves `n` images in the first character directory."""
    d = os.path.dirname(_first_png(root))
    for f in sorted(os.listdir(d))[n:]:
        os.remove(os.path.join(d, f))


OMNIGLOT_CASES = [
    # (name, extra flags, data defect, message fragment, exit status)
    ("zero shots", ["--shots", "0"], None, "--shots 0 must be a positive integer", 2),
    ("zero classes", ["--classes", "0"], None, "--classes 0 must be a positive integer", 2),
    ("zero inner batch", ["--inner-batch", "0"], None, "--inner-batch 0 must be", 2),
    ("zero inner iters", ["--inner-iters", "0"], None, "--inner-iters 0 must be", 2),
    ("negative meta batch", ["--meta-batch", "-1"], None, "--meta-batch -1 must be", 2),
    ("zero eval batch", ["--eval-batch", "0"], None, "--eval-batch 0 must be", 2),
    ("zero eval iters", ["--eval-iters", "0"], None, "--eval-iters 0 must be", 2),
    ("zero eval samples", ["--eval-samples", "0"], None, "--eval-samples 0 must be", 2),
    ("zero eval interval", ["--eval-interval", "0"], None, "--eval-interval 0 must be", 2),
    ("negative train shots", ["--train-shots", "-2"], None, "--train-shots -2 must be >= 0", 2),
    ("negative meta iters", ["--meta-iters", "-1"], None, "--meta-iters -1 must be >= 0", 2),
    ("zero learning rate", ["--learning-rate", "0"], None, "--learning-rate 0.0 must be a positive", 2),
    ("nan learning rate", ["--learning-rate", "nan"], None, "--learning-rate nan must be", 2),
    ("weight decay above 1", ["--weight-decay", "1.5"], None, "--weight-decay 1.5 must be in (0, 1]", 2),
    ("nan meta step", ["--meta-step", "nan"], None, "--meta-step nan must be a finite", 2),
    ("too many classes for train", ["--classes", "30"], None,
     "--classes 30 is more than the 24 classes of the train split; valid: 1..24", 2),
    ("too many classes for test", ["--classes", "7"], None,
     "--classes 7 is more than the 6 classes of the test split", 2),
    ("shots + query above images", ["--shots", "20"], None,
     "--shots 20 (+1 query) needs 21 images per class", 2),
    ("train shots above images", ["--train-shots", "21"], None,
     "--train-shots 21 needs 21 images per class", 2),
    ("foml tail = train shots", ["--foml", "--foml-tail", "5"], None,
     "--foml-tail 5 must be between 1 and 4", 2),
    ("foml tail, one inner iter", ["--foml", "--foml-tail", "1", "--inner-iters", "1"], None,
     "--foml-tail needs --inner-iters >= 2", 2),
    ("inner batch > task with replacement", ["--replacement", "--inner-batch", "30"], None,
     "--inner-batch 30 is larger than the task's 25 samples", 2),
    ("eval batch > task with replacement", ["--replacement", "--eval-batch", "26"], None,
     "--eval-batch 26 is larger than the task's 25 samples", 2),
    ("train characters = all", ["--train-characters", "12"], None,
     "--train-characters 12 must be between 1 and 11 (12 characters found", 2),
    ("train characters 0", ["--train-characters", "0"], None, "--train-characters 0 must be", 2),
    ("pretrained, no checkpoint", ["--pretrained", "--checkpoint", "{tmp}/none"], None,
     "--pretrained: no checkpoint in", 2),
    ("checkpoint under a file", ["--checkpoint", "{data}/Alphabet_0/character01/0000_01.png/ck"],
     None, "is not a writable directory", 2),
    ("export under a file", ["--export", "{png}/model"], None,
     "--export '{png}/model' cannot be written: '{png}' is a file, not a folder", 2),
    ("export is a file", ["--export", "{png}"], None,
     "--export '{png}' cannot be written: '{png}' is a file, not a folder", 2),
    ("export into a folder of other files", ["--export", "{data}"], None,
     "--export '{data}' is a folder that holds other files, not a SavedModel of this project", 2),
    ("eval results under a file", ["--eval-results", "{png}/results.json"], None,
     "--eval-results '{png}/results.json' cannot be written: '{png}' is a file, not a folder", 2),
    ("eval results is a folder", ["--eval-results", "{tmp}/results.json"],
     lambda d: os.makedirs(os.path.join(os.path.dirname(d), "results.json")),
     "--eval-results '{tmp}/results.json' is a folder; pass a file name ending in one of", 2),
    ("eval results suffix", ["--eval-results", "{tmp}/results.txt"], None,
     "--eval-results '{tmp}/results.txt': the file name must end in one of", 2),
    ("missing data dir", ["--data-dir", "{tmp}/nowhere"], None,
     "does not exist; download it with `./fetch_data.sh omniglot` or pass --data-dir", 2),
    ("data dir is a file", ["--data-dir", "{data}/Alphabet_0/character01/0000_01.png"], None,
     "is not a directory", 2),
    ("empty data dir", ["--data-dir", "{tmp}/empty"], lambda d: os.makedirs(os.path.join(
        os.path.dirname(d), "empty")), "no <alphabet>/character*/ directories", 2),
    ("data dir one level too high", ["--data-dir", "{tmp}"], None,
     "the characters are one level deeper: pass --data-dir", 2),
    ("class with too few images", [], lambda d: _keep(d, 3),
     "needs 6 images per class but the smallest class of the", 2),
    ("class with no images", [], lambda d: _keep(d, 0), "has 0", 2),
    ("truncated PNG", [], lambda d: _truncate(_first_png(d)), "cannot read image", 2),
    ("HTML page saved as PNG", [], lambda d: _write(_first_png(d), b"<!DOCTYPE html><html>"
                                                    b"<body>404 Not Found</body></html>"),
     "it is an HTML/XML page, not an image", 2),
    ("empty PNG", [], lambda d: _write(_first_png(d), b""), "the file is empty", 2),
    ("random bytes as PNG", [], lambda d: _write(_first_png(d), os.urandom(300)),
     "--skip-bad-images", 2),
]


@pytest.mark.parametrize("name,flags,defect,fragment,status", OMNIGLOT_CASES,
                         ids=[c[0] for c in OMNIGLOT_CASES])
def test_omniglot_bad_input(tmp_path, capsys, name, flags, defect, fragment, status):
    data = make_omniglot(tmp_path / "omniglot", alphabets=3, characters=4)
    if defect:
        defect(data)
    paths = dict(tmp=tmp_path, data=data,
                 png=os.path.join(data, "Alphabet_0", "character01", "0000_01.png"))
    flags, fragment = [f.format(**paths) for f in flags], fragment.format(**paths)
    argv = ["--data-dir", data, *OMNI, "--checkpoint", str(tmp_path / "ck"), "--meta-iters",
            "0", "--eval-samples", "1", *flags]
    assert cli.main(argv, "omniglot") == status
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and fragment in err[-1], err
    assert not os.path.exists(tmp_path / "ck")  # a failed run leaves no empty folder
    if "PNG" in name:  # a corrupt file: the message names it
        assert f"cannot read image {_first_png(data)!r}" in err[-1]


def _drop_split(d):
    shutil.rmtree(os.path.join(d, "test"))


def _empty_split(d):
    shutil.rmtree(os.path.join(d, "val"))
    os.makedirs(os.path.join(d, "val"))


MINI_CASES = [
    ("missing data dir", ["--data-dir", "{tmp}/nowhere"], None,
     "`./fetch_data.sh miniimagenet`", 2),
    ("half download: no test split", [], _drop_split, "has no test/ (expected train/, val/", 2),
    ("split without classes", [], _empty_split, "split has no classes", 2),
    ("HTML saved as .JPEG", [], lambda d: _write(_first_png(d), b"<html><body>Forbidden</body>"
                                                 b"</html>"), "HTML/XML page", 2),
    ("truncated JPEG", [], lambda d: _truncate(_first_png(d)), "cannot read image", 2),
    ("too many classes", ["--classes", "3"], None, "classes of the val split; valid: 1..2", 2),
]


@pytest.mark.parametrize("name,flags,defect,fragment,status", MINI_CASES,
                         ids=[c[0] for c in MINI_CASES])
def test_miniimagenet_bad_input(tmp_path, capsys, name, flags, defect, fragment, status):
    data = make_miniimagenet(tmp_path / "mini", classes=(3, 2, 2), images=4)
    if defect:
        defect(data)
    flags = [f.format(tmp=tmp_path) for f in flags]
    argv = ["--data-dir", data, "--classes", "2", "--shots", "1", "--train-shots", "2",
            "--inner-batch", "2", "--eval-batch", "2", "--checkpoint", str(tmp_path / "ck"),
            "--meta-iters", "0", "--eval-samples", "1", *flags]
    assert cli.main(argv, "miniimagenet") == status
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and fragment in err[-1], err
    assert not os.path.exists(tmp_path / "ck")


def test_output_paths_that_can_be_written_pass(tmp_path):
    """New nested folders, an empty folder, and an earlier export (replaced)."""
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "saved_model.pb").write_bytes(b"")
    (earlier / "supervised_reptile.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    for export in (tmp_path / "a" / "b" / "model", tmp_path / "empty", earlier):
        validate.check_output_paths(Config.from_flat(
            export=str(export), eval_results=str(tmp_path / "c" / "results.csv")))
    assert not os.path.exists(tmp_path / "a") and not os.path.exists(tmp_path / "c")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_output_paths_in_a_read_only_folder_are_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    for fields, flag in ((dict(export=str(locked / "m")), "--export"),
                         (dict(eval_results=str(locked / "r.json")), "--eval-results")):
        with pytest.raises(ValueError, match=f"^{flag} .* cannot be written: no permission"):
            validate.check_output_paths(Config.from_flat(**fields))


def test_bad_flag_syntax_is_argparse_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--shots", "abc"], "omniglot")
    assert exc.value.code == 2
    assert "--shots: invalid int value: 'abc'" in capsys.readouterr().err


WARNINGS = [
    (dict(meta_step=2.0), "--meta-step 2.0 is outside [0, 1]"),
    (dict(meta_step_final=-0.5), "--meta-step-final -0.5 is outside [0, 1]"),
    (dict(foml_tail=2), "--foml-tail 2 has no effect without --foml"),
    (dict(inner_batch=30), "--inner-batch 30 is larger than the task's 25 samples"),
    (dict(eval_batch=26), "--eval-batch 26 is larger than the task's 25 samples"),
]


@pytest.mark.parametrize("fields,fragment", WARNINGS)
def test_odd_but_workable_flags_warn(fields, fragment):
    warnings = []
    validate.check_flags(Config.from_flat(**fields), warnings.append)
    assert len(warnings) == 1 and fragment in warnings[0]


def test_paper_presets_pass_without_warnings():
    from supervised_reptile.presets import PRESETS
    for dataset, fields in PRESETS.values():
        warnings = []
        validate.check_flags(Config.from_flat(dataset=dataset, **fields), warnings.append)
        assert warnings == []


def test_split_sizes_count_rotations_and_the_smallest_class(tmp_path):
    data = make_omniglot(tmp_path / "o", alphabets=2, characters=3, drawings=4)
    os.remove(_first_png(data))
    sizes = validate.split_sizes(Config.from_flat(data_dir=data, train_characters=4), print)
    assert sizes["train"].num_classes + sizes["test"].num_classes * 4 == 24
    assert min(sizes["train"].min_count, sizes["test"].min_count) == 3


def test_a_renamed_dataset_warns_in_a_few_lines_then_points_to_the_check(tmp_path):
    # Every class of this copy is outside the standard split: one note per class and more.
    data = make_miniimagenet(tmp_path / "m", images=1)
    form = registry.find(data, "miniimagenet", 84, 3)
    notes = check_data.notes(form, form.scan())
    assert len(notes) > check_data.RUN_NOTES + 5
    warnings = []
    validate.split_sizes(Config.from_flat(dataset="miniimagenet", data_dir=data), warnings.append)
    check = f"python -m supervised_reptile.check_data {data} --dataset miniimagenet"
    assert warnings == [f"{note} (check with `{check}`)" for note in notes[:check_data.RUN_NOTES]] + [
        f"{len(notes) - check_data.RUN_NOTES} more difference(s) from the standard dataset; "
        f"`{check}` lists them all"]
