"""Tests of `supervised_reptile.data.cifar` on a tiny fake `cifar-100-python` in the real format."""

import os
import pickle

import numpy as np
import pytest

from supervised_reptile.data import cifar, forms

# CIFAR-100's label names in the order of `meta` (alphabetical in the real file).
FINE = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm")
COARSE = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2")
# The real coarse label of each fine label (by index), as public FC100 loaders list it
# (and as torchmeta's cifar-fs/*.json [superclass, class] pairs agree).
FINE_TO_COARSE = (
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11, 6, 11, 5, 10, 7, 6, 13, 15,
    3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5, 5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4,
    2, 0, 17, 4, 18, 17, 10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13)
PER_FILE = {"train": 2, "test": 1}


def _dump(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_cifar100(root, seed=0):
    """Writes `root/cifar-100-python/{train,test,meta}` as the real ones are laid
    out (bytes keys, channel-major uint8 rows, rows of all classes shuffled);
    returns the folder and file -> (rows, fine labels)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-100-python")
    os.makedirs(folder)
    written = {}
    for file, n in PER_FILE.items():
        fine = rng.permutation(np.repeat(np.arange(100), n))
        data = rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)
        _dump({b"batch_label": f"{file}ing batch 1 of 1".encode(),
               b"filenames": [f"{FINE[f]}_s_{i:06d}.png".encode() for i, f in enumerate(fine)],
               b"fine_labels": [int(f) for f in fine],
               b"coarse_labels": [FINE_TO_COARSE[f] for f in fine],
               b"data": data}, os.path.join(folder, file))
        written[file] = (data, fine)
    _dump({b"fine_label_names": [n.encode() for n in FINE],
           b"coarse_label_names": [n.encode() for n in COARSE]}, os.path.join(folder, "meta"))
    return folder, written


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_cifar100(str(tmp_path_factory.mktemp("cifar")))


def _hwc(row):
    """One channel-major row as [32, 32, 3], pixel by pixel."""
    out = np.zeros((32, 32, 3), np.uint8)
    for y in range(32):
        for x in range(32):
            for ch in range(3):
                out[y, x, ch] = row[ch * 1024 + y * 32 + x]
    return out


def test_split_lists_partition_the_classes():
    fs = cifar.CIFAR_FS_CLASSES
    assert [len(fs[s]) for s in forms.SPLITS] == [64, 16, 20]
    assert sorted(n for s in forms.SPLITS for n in fs[s]) == list(FINE)  # no repeats, none left
    fc = cifar.FC100_SUPERCLASSES
    assert [len(fc[s]) for s in forms.SPLITS] == [12, 4, 4]
    assert sorted(n for s in forms.SPLITS for n in fc[s]) == list(COARSE)
    assert [len(v) for v in (FINE, COARSE, FINE_TO_COARSE)] == [100, 20, 100]
    assert np.all(np.bincount(FINE_TO_COARSE) == 5)


def test_detect_on_both_levels_and_not_elsewhere(fake, tmp_path):
    folder, _ = fake
    for form in cifar.FORMS:
        assert form.detect(os.path.dirname(folder)) and form.detect(folder)
        assert not form.detect(str(tmp_path))
    for name in ("train", "test", "val"):  # a Mini-ImageNet-like layout: split folders
        os.makedirs(tmp_path / "mini" / name)
    os.makedirs(tmp_path / "mini" / "meta")
    partial = tmp_path / "partial" / "cifar-100-python"
    os.makedirs(partial)
    for name in ("train", "test"):  # no meta
        (partial / name).write_bytes(b"")
    for where in (tmp_path / "mini", partial, partial.parent):
        assert not cifar.CifarFS.detect(str(where))
    with pytest.raises(FileNotFoundError, match="partial"):
        cifar.FC100(str(partial)).sources()


@pytest.mark.parametrize("form, classes", [(cifar.CifarFS, (64, 16, 20)),
                                           (cifar.FC100, (60, 20, 20))])
def test_scan_counts(fake, form, classes):
    scan = form(os.path.dirname(fake[0])).scan()
    assert tuple(len(scan[s]) for s in forms.SPLITS) == classes
    assert all(list(counts) == sorted(counts) for counts in scan.values())
    assert {n for counts in scan.values() for n in counts.values()} == {3}
    assert form(fake[0]).notes(scan) == []


def test_cifar_fs_splits_follow_the_lists(fake):
    scan = cifar.CifarFS(fake[0]).scan()
    assert {s: tuple(scan[s]) for s in forms.SPLITS} == cifar.CIFAR_FS_CLASSES


def test_fc100_keeps_each_superclass_in_one_split(fake):
    scan = cifar.FC100(fake[0]).scan()
    split_of = {name: s for s in forms.SPLITS for name in scan[s]}
    for c, superclass in enumerate(COARSE):
        members = {split_of[FINE[f]] for f in range(100) if FINE_TO_COARSE[f] == c}
        assert len(members) == 1, superclass
        assert superclass in cifar.FC100_SUPERCLASSES[members.pop()]


def test_pixels_and_train_then_test_order(fake):
    folder, written = fake
    pool = cifar.CifarFS(folder).read_split("val")
    assert pool.images.shape == (16, 3, 32, 32, 3) and pool.images.dtype == np.uint8
    assert pool.names == cifar.CIFAR_FS_CLASSES["val"]
    assert list(pool.counts) == [3] * 16
    c = pool.names.index("otter")
    label = FINE.index("otter")
    rows = [written[f][0][written[f][1] == label] for f in ("train", "test")]
    expected = np.concatenate(rows)  # train rows in file order, then test rows
    assert len(expected) == 3
    for i, row in enumerate(expected):
        np.testing.assert_array_equal(pool.images[c, i], _hwc(row))
    # the other classes too, through the reshape the loaders use
    for c, name in enumerate(pool.names):
        label = FINE.index(name)
        rows = np.concatenate([written[f][0][written[f][1] == label] for f in ("train", "test")])
        np.testing.assert_array_equal(
            pool.images[c], rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def test_fc100_read_split(fake):
    pool = cifar.FC100(os.path.dirname(fake[0])).read_split("test")
    assert pool.num_classes == 20 and pool.image_shape == (32, 32, 3)
    assert list(pool.names) == sorted(
        FINE[f] for f in range(100) if COARSE[FINE_TO_COARSE[f]] in
        cifar.FC100_SUPERCLASSES["test"])


def test_allocate_is_honoured(fake, tmp_path):
    made = []

    def allocate(shape, dtype):
        made.append(np.lib.format.open_memmap(str(tmp_path / "pool.npy"), "w+", dtype, shape))
        return made[-1]

    pool = cifar.FC100(fake[0]).read_split("train", allocate=allocate)
    assert len(made) == 1 and pool.images is made[0]
    assert made[0].shape == (60, 3, 32, 32, 3)
    np.testing.assert_array_equal(
        np.load(str(tmp_path / "pool.npy")), cifar.FC100(fake[0]).read_split("train").images)


def test_sources_decoder_and_bad_split(fake):
    folder, _ = fake
    form = cifar.CifarFS(os.path.dirname(folder))
    assert sorted(form.sources()) == sorted(os.path.join(folder, f) for f in cifar.FILES)
    assert form.decoder and form.dataset == "cifar-fs" and cifar.FC100.dataset == "fc100"
    assert form.fingerprint() == cifar.CifarFS(os.path.dirname(folder)).fingerprint()
    assert form.fingerprint() != cifar.FC100(os.path.dirname(folder)).fingerprint()
    with pytest.raises(ValueError, match="'validation'"):
        form.read_split("validation")


def test_notes_name_odd_class_counts(fake):
    scan = cifar.FC100(fake[0]).scan()
    del scan["val"]["bear"]
    scan["test"] = {}
    assert cifar.FC100(fake[0]).notes(scan) == [
        "fc100 split val has 19 classes; the standard split has 20",
        "fc100 split test has 0 classes; the standard split has 20"]


def test_bad_pickles_are_named(tmp_path):
    folder, _ = make_cifar100(str(tmp_path))
    with open(os.path.join(folder, "train"), "wb") as f:
        f.write(b"<html>not a pickle</html>")
    with pytest.raises(ValueError, match="cannot read .*train"):
        cifar.CifarFS(folder).scan()
    _dump({b"fine_labels": [0]}, os.path.join(folder, "train"))
    with pytest.raises(ValueError, match="coarse_labels"):
        cifar.CifarFS(folder).scan()
    _dump({b"fine_labels": [0], b"coarse_labels": [4],
           b"data": np.zeros((1, 32, 32, 3), np.uint8)}, os.path.join(folder, "train"))
    with pytest.raises(ValueError, match=r"uint8 \[1, 3072\]"):
        cifar.CifarFS(folder).read_split("train")
    _dump({b"fine_labels": [0], b"coarse_labels": [5], b"data": np.zeros((1, 3072), np.uint8)},
          os.path.join(folder, "train"))
    with pytest.raises(ValueError, match="'apple' is labelled with several superclasses"):
        cifar.FC100(folder).scan()
