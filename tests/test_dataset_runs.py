"""Whole runs on the datasets beyond Omniglot and Mini-ImageNet's original layout:
tieredImageNet and 10-way Mini-ImageNet presets, CIFAR-FS and FC100, a user's
folders (generated images in the real layouts), and the real Omniglot subset
run as a folder dataset, with export and `predict` at the end."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import make_miniimagenet
from supervised_reptile import cli, flags
from supervised_reptile.data import registry, store
from test_cifar import make_cifar100
from test_tieredimagenet import write_pickles

#: The smallest task sizes on top of a preset: a few seconds per run.
SMALL = ["--train-shots", "2", "--inner-iters", "2", "--meta-iters", "2", "--eval-iters", "2",
         "--eval-samples", "2", "--eval-interval", "1", "--meta-batch", "2"]


def _tiered(root, classes=10, images=3, seed=0):
    """Ren et al.'s pickles with `classes` classes of `images` 84x84 PNGs per split."""
    rng = np.random.default_rng(seed)
    data = {}
    for s, split in enumerate(("train", "val", "test")):
        data[split] = {}
        for c in range(classes):
            items = []
            for _ in range(images):
                arr = rng.integers(0, 256, (84, 84, 3), dtype=np.uint8)
                buf = __import__("io").BytesIO()
                Image.fromarray(arr).save(buf, format="PNG")
                items.append((buf.getvalue(), arr))
            data[split][f"n{9000000 + 100 * s + c:08d}"] = items
    return write_pickles(str(root), data)


def _accuracy_lines(out):
    return [l for l in out.splitlines() if l.split(" accuracy")[0] in ("Train", "Validation", "Test")
            and ": " in l and "CI" not in l]


@pytest.mark.parametrize("preset", ["t510", "t15t"])
def test_tieredimagenet_presets_run_from_the_pickles(tmp_path, capsys, preset):
    data = _tiered(tmp_path / "tiered", classes=10)
    argv = ["--preset", preset, "--data-dir", data, "--checkpoint", str(tmp_path / "ck"),
            "--shots", "1", "--inner-batch", "4", "--eval-batch", "4", *SMALL]
    config = flags.parse_args(argv, "miniimagenet")
    assert config.data.dataset == "tieredimagenet"
    assert config.task.classes == (10 if preset == "t510" else 5)
    assert cli.main(argv, "miniimagenet") == 0
    out = capsys.readouterr().out
    assert "Decoded {train,val,test}_images_png.pkl" in out
    assert len(_accuracy_lines(out)) == 3
    saved = json.load(open(tmp_path / "ck" / "config.json"))
    assert saved["data"]["dataset"] == "tieredimagenet"
    assert store.Store.detect(os.path.join(data, ".decoded"))


def test_ten_way_miniimagenet_preset(tmp_path, capsys):
    data = make_miniimagenet(tmp_path / "mini", classes=(10, 10, 10), images=3)
    argv = ["--preset", "m110", "--data-dir", data, "--checkpoint", str(tmp_path / "ck"),
            "--inner-batch", "4", "--eval-batch", "4", *SMALL]
    assert flags.parse_args(argv, "miniimagenet").task.classes == 10
    assert cli.main(argv, "miniimagenet") == 0
    assert len(_accuracy_lines(capsys.readouterr().out)) == 3


@pytest.mark.parametrize("preset,dataset", [("c15", "cifar-fs"), ("f15", "fc100")])
def test_cifar_presets_run_at_32x32(tmp_path, capsys, preset, dataset):
    make_cifar100(str(tmp_path / "cifar"))
    argv = ["--preset", preset, "--data-dir", str(tmp_path / "cifar"), "--checkpoint",
            str(tmp_path / "ck"), "--export", str(tmp_path / "model"), *SMALL]
    assert cli.main(argv, "miniimagenet") == 0
    out = capsys.readouterr().out
    assert len(_accuracy_lines(out)) == 3
    meta = json.load(open(tmp_path / "model" / "supervised_reptile.json"))
    assert meta["image_shape"] == [32, 32, 3]
    split = json.load(open(tmp_path / "ck" / "split.json"))
    expected = {"cifar-fs": (64, 16, 20), "fc100": (60, 20, 20)}[dataset]
    assert tuple(len(split[s]) for s in ("train", "val", "test")) == expected


def _folders(root, classes=(4, 3, 3), images=3, seed=0):
    """A user's folders: odd class names, mixed formats and sizes."""
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "val", "test"), classes):
        for c in range(n):
            folder = os.path.join(root, split, f"class {c} é")
            os.makedirs(folder)
            for k in range(images):
                arr = rng.integers(0, 256, (40 + k, 50, 3), dtype=np.uint8)
                name = f"img{k}." + ("PNG" if k % 2 else "jpg")
                Image.fromarray(arr).save(os.path.join(folder, name))
            open(os.path.join(folder, ".DS_Store"), "wb").write(b"\0\1")
    return str(root)


def test_own_folders_train_export_and_predict(tmp_path, capsys):
    data = _folders(tmp_path / "mine")
    argv = ["--dataset", "folder", "--data-dir", data, "--image-size", "24", "--classes", "3",
            "--shots", "1", "--inner-batch", "3", "--eval-batch", "3", "--checkpoint",
            str(tmp_path / "ck"), "--export", str(tmp_path / "model"), *SMALL]
    assert cli.main(argv, "miniimagenet") == 0
    saved = json.load(open(tmp_path / "ck" / "config.json"))["data"]
    assert (saved["image_size"], saved["channels"]) == (24, 3)  # channels inferred
    split = json.load(open(tmp_path / "ck" / "split.json"))
    assert split["test"] == ["class 0 é", "class 1 é", "class 2 é"]
    capsys.readouterr()
    support = os.path.join(data, "test")
    query = tmp_path / "query"
    os.makedirs(query)
    for name in split["test"]:
        src = os.path.join(support, name, "img0.jpg")
        os.link(src, query / f"{name[:7]}.jpg")
    assert cli.predict_main(["--model", str(tmp_path / "model"), "--support", support,
                             "--query", str(query)]) == 0
    rows = [l.split("\t") for l in capsys.readouterr().out.splitlines()]
    assert [r[0] for r in rows] == ["class 0.jpg", "class 1.jpg", "class 2.jpg"]
    assert all(r[1] in split["test"] for r in rows)


def test_guess_and_find_agree_on_each_generated_form(tmp_path):
    make_cifar100(str(tmp_path / "cifar"))
    cases = {_tiered(tmp_path / "tiered", classes=2): "tieredimagenet",
             str(tmp_path / "cifar"): "cifar-fs",
             _folders(tmp_path / "mine", classes=(1, 1, 1), images=1): "folder",
             make_miniimagenet(tmp_path / "mini", (1, 1, 1), 1): "miniimagenet"}
    for data, dataset in cases.items():
        assert registry.guess(data) == dataset
        assert registry.find(data, dataset).dataset == dataset


def _omniglot_as_folders(omniglot_dir, root, counts=(100, 18, 18)):
    """The real Omniglot characters as a user's folders (links), split in order."""
    chars = sorted(os.path.join(a, c) for a in os.listdir(omniglot_dir)
                   for c in os.listdir(os.path.join(omniglot_dir, a)))
    start = 0
    for split, n in zip(("train", "val", "test"), counts):
        os.makedirs(os.path.join(root, split))
        for char in chars[start:start + n]:
            os.symlink(os.path.join(omniglot_dir, char),
                       os.path.join(root, split, char.replace(os.sep, "--")))
        start += n
    return str(root)


@pytest.mark.slow
def test_real_omniglot_as_a_folder_dataset_beats_chance(real_omniglot_dir, tmp_path, capsys):
    data = _omniglot_as_folders(real_omniglot_dir, tmp_path / "omni")
    argv = ["--dataset", "folder", "--data-dir", data, "--image-size", "28", "--classes", "5",
            "--shots", "1", "--train-shots", "10", "--inner-batch", "10", "--inner-iters", "5",
            "--learning-rate", "0.001", "--meta-batch", "5", "--meta-iters", "150",
            "--eval-batch", "5", "--eval-iters", "20", "--eval-samples", "40",
            "--eval-interval", "1000", "--transductive", "--checkpoint", str(tmp_path / "ck")]
    assert cli.main(argv, "miniimagenet") == 0
    out = capsys.readouterr().out
    saved = json.load(open(tmp_path / "ck" / "config.json"))["data"]
    assert saved["channels"] == 1  # Omniglot's PNGs are greyscale
    test = [l for l in out.splitlines() if l.startswith("Test accuracy")]
    # 5-way: chance is 0.2.
    assert test and float(test[0].split()[-1]) > 0.35, out
