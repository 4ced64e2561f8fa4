"""Tests of `supervised_reptile.data.miniimagenet` against the original's recipe (docs/semantics.md#mini-imagenet)."""

import os

import numpy as np
import pytest
from PIL import Image

from conftest import make_miniimagenet
from supervised_reptile.data import miniimagenet
from supervised_reptile.data.class_pool import list_images


def original_read(path):
    """The original's `_read_image` under Pillow 4 (default filter NEAREST), as uint8."""
    with Image.open(path) as img:
        return np.array(img.resize((84, 84), Image.NEAREST).convert("RGB"))


@pytest.fixture
def small_mini(tmp_path):
    return make_miniimagenet(tmp_path / "mini", classes=(2, 1, 1), images=3)


def _noise_jpeg(path, size=(150, 110), seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, quality=95)
    return str(path)


def test_read_image_shape_dtype_and_nearest(tmp_path):
    path = _noise_jpeg(tmp_path / "x.JPEG")
    img = miniimagenet.read_image(path)
    assert img.shape == (84, 84, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, original_read(path))
    # The filter matters: Pillow's modern default (BICUBIC) gives other pixels.
    with Image.open(path) as im:
        bicubic = np.array(im.resize((84, 84), Image.BICUBIC).convert("RGB"))
    assert (img != bicubic).mean() > 0.5


def test_nearest_picks_source_pixels(tmp_path):
    # A lossless PNG source lets us check the exact nearest-neighbour mapping.
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (100, 168, 3), dtype=np.uint8)
    path = str(tmp_path / "x.png")
    Image.fromarray(arr).save(path)
    img = miniimagenet.read_image(path)
    rows = np.floor((np.arange(84) + 0.5) * 100 / 84).astype(int)
    cols = np.floor((np.arange(84) + 0.5) * 168 / 84).astype(int)
    np.testing.assert_array_equal(img, arr[np.ix_(rows, cols)])


def test_grayscale_becomes_three_equal_channels(tmp_path):
    path = _noise_jpeg(tmp_path / "g.JPEG", mode="L", seed=3)
    with Image.open(path) as im:
        assert im.mode == "L"
    img = miniimagenet.read_image(path)
    assert img.shape == (84, 84, 3)
    np.testing.assert_array_equal(img[..., 0], img[..., 1])
    np.testing.assert_array_equal(img[..., 0], img[..., 2])
    np.testing.assert_array_equal(img, original_read(path))
    assert img.std() > 10  # not a constant image


def test_list_classes_only_n_directories_sorted(small_mini):
    split = os.path.join(small_mini, "train")
    os.makedirs(os.path.join(split, "x00000001"))        # not starting with n
    os.makedirs(os.path.join(split, "N00000002"))        # upper-case N
    with open(os.path.join(split, "n_not_a_dir.txt"), "w") as f:
        f.write("file")
    os.makedirs(os.path.join(split, "n0000000a"))        # sorts before n01000000, n01000001
    got = miniimagenet.list_classes(split)
    assert got == [os.path.join(split, n) for n in ["n0000000a", "n01000000", "n01000001"]]


def test_list_classes_missing_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch_data.sh") as e:
        miniimagenet.list_classes(str(tmp_path / "nothing" / "train"))
    assert "train" in str(e.value)


def test_load_missing_split_dir(small_mini):
    import shutil
    shutil.rmtree(os.path.join(small_mini, "val"))
    with pytest.raises(FileNotFoundError, match="val"):
        miniimagenet.load(small_mini)


def test_load_split_without_classes(tmp_path):
    os.makedirs(tmp_path / "test" / "other")
    with pytest.raises(FileNotFoundError, match="the test split of .* has no classes"):
        miniimagenet.load_split(str(tmp_path / "test"))


def test_load_pools_match_original(small_mini):
    train, val, test = miniimagenet.load(small_mini)
    assert train.num_classes == 2 and val.num_classes == 1 and test.num_classes == 1
    for split, pool in zip(("train", "val", "test"), (train, val, test)):
        classes = miniimagenet.list_classes(os.path.join(small_mini, split))
        assert pool.names == tuple(os.path.basename(c) for c in classes)
        assert pool.images.shape == (len(classes), 3, 84, 84, 3)
        assert pool.images.dtype == np.uint8
        np.testing.assert_array_equal(pool.counts, [3] * len(classes))
        for c, cls in enumerate(classes):
            files = list_images(cls, ".JPEG")
            for k, f in enumerate(files):
                np.testing.assert_array_equal(pool.images[c, k], original_read(f))
    # The first image of each class is a grayscale JPEG in the fixture: equal channels.
    first = train.images[0, 0]
    assert (first[..., 0] == first[..., 1]).all() and (first[..., 1] == first[..., 2]).all()


def test_load_ragged_counts_padded_and_suffix(small_mini):
    cls = miniimagenet.list_classes(os.path.join(small_mini, "train"))
    os.remove(list_images(cls[0], ".JPEG")[-1])
    os.remove(list_images(cls[0], ".JPEG")[-1])
    # Lower-case suffixes are ignored, as in the original.
    _noise_jpeg(os.path.join(cls[1], "zzz.jpeg"))
    _noise_jpeg(os.path.join(cls[1], "extra.JPEG"), seed=9)
    pool = miniimagenet.load_split(os.path.join(small_mini, "train"))
    np.testing.assert_array_equal(pool.counts, [1, 4])
    assert pool.images.shape == (2, 4, 84, 84, 3)
    assert not pool.images[0, 1:].any()
    assert pool.min_count == 1
    files = list_images(cls[1], ".JPEG")
    assert os.path.basename(files[0]) == "extra.JPEG"
    np.testing.assert_array_equal(pool.images[1, 0], original_read(files[0]))


def test_conftest_layout_loads(miniimagenet_dir):
    train, val, test = miniimagenet.load(miniimagenet_dir)
    assert [p.num_classes for p in (train, val, test)] == [3, 2, 2]
    for pool in (train, val, test):
        assert pool.images.shape[1:] == (8, 84, 84, 3)
        assert (pool.counts == 8).all()
        assert all(os.path.basename(n).startswith("n") for n in pool.names)
        assert list(pool.names) == sorted(pool.names)
