"""Tests of `supervised_reptile.data.omniglot` against the original's recipe (docs/semantics.md#omniglot-split)."""

import os
import random

import numpy as np
import pytest
from PIL import Image

from conftest import make_omniglot
from supervised_reptile.data import omniglot
from supervised_reptile.data.class_pool import list_images


def original_read(path, rotation):
    """The original `Character._read_image`, scaled to this port's uint8 range."""
    with open(path, "rb") as f:
        img = Image.open(f).resize((28, 28)).rotate(rotation)
        return np.array(img).astype("float32") * 255


def original_split(chars, num_train, seed):
    """The original recipe: `random.seed(seed)` then `random.shuffle` with the global RNG."""
    state = random.getstate()
    try:
        random.seed(seed)
        shuffled = list(chars)
        random.shuffle(shuffled)
    finally:
        random.setstate(state)
    return shuffled[:num_train], shuffled[num_train:]


@pytest.fixture
def small_omniglot(tmp_path):
    return make_omniglot(tmp_path / "small", alphabets=2, characters=3, drawings=3)


# ------------------------------------------------------------------ listing

def test_list_characters_order_and_filtering(tmp_path):
    root = tmp_path / "om"
    layout = {
        "b_alpha": ["character2", "character10", "character1"],
        "A_alpha": ["character05", "notes", "Character07"],
        "a_alpha": ["character01"],
    }
    for alpha, entries in layout.items():
        for e in entries:
            os.makedirs(root / alpha / e)
    (root / "README.txt").write_text("not an alphabet")          # non-directory skipped
    (root / "0_file_alphabet").write_text("not an alphabet")
    got = omniglot.list_characters(str(root))
    expected = [
        ("A_alpha", "character05"),  # "A" < "a" < "b" (plain sorted order)
        ("a_alpha", "character01"),
        ("b_alpha", "character1"),
        ("b_alpha", "character10"),  # string order, not numeric
        ("b_alpha", "character2"),
    ]
    assert got == [os.path.join(str(root), a, c) for a, c in expected]


def test_list_characters_missing_dir(tmp_path):
    missing = str(tmp_path / "does_not_exist")
    with pytest.raises(FileNotFoundError, match="fetch_data.sh") as e:
        omniglot.list_characters(missing)
    assert missing in str(e.value)


def test_list_characters_empty_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="fetch_data.sh"):
        omniglot.list_characters(str(tmp_path / "empty"))


def test_list_characters_no_character_dirs(tmp_path):
    os.makedirs(tmp_path / "om" / "Alpha" / "glyph01")
    with pytest.raises(FileNotFoundError, match="fetch_data.sh"):
        omniglot.list_characters(str(tmp_path / "om"))


# ------------------------------------------------------------------ split

CHARS = [f"/d/Alpha_{a}/character{c:02d}" for a in range(5) for c in range(1, 12)]


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_split_matches_original_shuffle(seed):
    train, test = omniglot.split_characters(CHARS, 40, seed)
    # Reference 1: a separate Random instance.
    ref = list(CHARS)
    random.Random(seed).shuffle(ref)
    assert train == ref[:40] and test == ref[40:]
    # Reference 2: the original's global-RNG recipe.
    assert (train, test) == original_split(CHARS, 40, seed)
    assert len(train) == 40 and len(test) == len(CHARS) - 40
    assert sorted(train + test) == sorted(CHARS)


def test_split_seed0_is_not_identity_and_seeds_differ():
    a, _ = omniglot.split_characters(CHARS, 40, 0)
    b, _ = omniglot.split_characters(CHARS, 40, 1)
    assert a != CHARS[:40]
    assert a != b


def test_split_leaves_global_rng_and_input_untouched():
    chars = list(CHARS)
    state = random.getstate()
    omniglot.split_characters(chars, 10, 3)
    assert random.getstate() == state
    assert chars == CHARS


@pytest.mark.parametrize("num_train", [0, -3, len(CHARS), len(CHARS) + 7])
def test_split_bad_num_train(num_train):
    with pytest.raises(ValueError, match=f"num_train {num_train} ") as e:
        omniglot.split_characters(CHARS, num_train, 0)
    assert str(len(CHARS)) in str(e.value)


def test_split_extremes_allowed():
    train, test = omniglot.split_characters(CHARS, 1, 0)
    assert len(train) == 1 and len(test) == len(CHARS) - 1
    train, test = omniglot.split_characters(CHARS, len(CHARS) - 1, 0)
    assert len(test) == 1


# ------------------------------------------------------------------ images

def test_read_image_matches_original_and_is_not_inverted(small_omniglot):
    path = list_images(omniglot.list_characters(small_omniglot)[0], ".png")[0]
    img = omniglot.read_image(path)
    assert img.dtype == np.uint8 and img.shape == (28, 28)
    np.testing.assert_array_equal(img.astype(np.float32), original_read(path, 0))
    assert set(np.unique(img)) <= {0, 255}
    # Nearest neighbour from the 105x105 source: (r, c) <- (floor((r+.5)*105/28), ...).
    src = np.array(Image.open(path))  # bool, True = white
    idx = np.floor((np.arange(28) + 0.5) * 105 / 28).astype(int)
    np.testing.assert_array_equal(img, src[np.ix_(idx, idx)].astype(np.uint8) * 255)


def _write_corner_character(root):
    """One character whose ink is a block near the top-left corner (asymmetric)."""
    d = root / "Alpha" / "character01"
    os.makedirs(d)
    pix = np.ones((105, 105), bool)  # white
    pix[0:30, 0:15] = False           # black ink, top-left, taller than wide
    Image.fromarray(pix).convert("1").save(d / "0001_01.png")
    return str(root), str(d / "0001_01.png")


def test_background_is_255_and_strokes_0(tmp_path):
    root, path = _write_corner_character(tmp_path)
    img = omniglot.read_image(path)
    assert img[0, 0] == 0 and img[27, 27] == 255 and img[0, 27] == 255
    assert (img == 255).mean() > 0.9


def test_rotation_is_counter_clockwise_like_pil(tmp_path):
    root, path = _write_corner_character(tmp_path)
    chars = omniglot.list_characters(root)
    pool = omniglot.load_pool(chars, omniglot.ROTATIONS)
    assert pool.names == tuple(f"{chars[0]}@{r}" for r in (0, 90, 180, 270))
    for j, r in enumerate(omniglot.ROTATIONS):
        np.testing.assert_array_equal(pool.images[j, 0].astype(np.float32), original_read(path, r))
    # Counter-clockwise: the top-left ink goes to the bottom-left after 90 degrees.
    r90 = pool.images[1, 0]
    assert r90[27, 0] == 0 and r90[0, 0] == 255 and r90[0, 27] == 255
    r180 = pool.images[2, 0]
    assert r180[27, 27] == 0 and r180[0, 0] == 255
    r270 = pool.images[3, 0]
    assert r270[0, 27] == 0 and r270[27, 0] == 255


def test_load_pool_rotations_character_major_match_original(small_omniglot):
    chars = omniglot.list_characters(small_omniglot)[:3]
    pool = omniglot.load_pool(chars, omniglot.ROTATIONS)
    assert pool.images.shape == (12, 3, 28, 28) and pool.images.dtype == np.uint8
    assert pool.images.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(pool.counts, [3] * 12)
    for i, c in enumerate(chars):
        files = list_images(c, ".png")
        for j, r in enumerate((0, 90, 180, 270)):
            assert pool.names[4 * i + j] == f"{c}@{r}"
            for k, f in enumerate(files):
                np.testing.assert_array_equal(pool.images[4 * i + j, k].astype(np.float32),
                                              original_read(f, r))
    # The rotations really are different images (the blobs are not symmetric).
    assert not np.array_equal(pool.images[0], pool.images[1])


def test_load_pool_unrotated_keeps_names(small_omniglot):
    chars = omniglot.list_characters(small_omniglot)[:2]
    pool = omniglot.load_pool(chars)
    assert pool.names == tuple(chars)
    assert pool.images.shape == (2, 3, 28, 28)


def test_load_pool_ragged_characters(small_omniglot):
    chars = omniglot.list_characters(small_omniglot)[:2]
    os.remove(list_images(chars[1], ".png")[0])
    pool = omniglot.load_pool(chars, omniglot.ROTATIONS)
    np.testing.assert_array_equal(pool.counts, [3, 3, 3, 3, 2, 2, 2, 2])
    assert not pool.images[4:, 2].any()  # padding stays zero in every rotation


def test_load_split_and_augmentation(small_omniglot):
    chars = omniglot.list_characters(small_omniglot)
    assert len(chars) == 6
    train, test = omniglot.load(small_omniglot, num_train=4, seed=7)
    ref_train, ref_test = original_split(chars, 4, 7)
    assert train.num_classes == 16 and test.num_classes == 2
    assert train.names == tuple(f"{c}@{r}" for c in ref_train for r in (0, 90, 180, 270))
    assert test.names == tuple(ref_test)
    assert train.images.shape == (16, 3, 28, 28)
    assert test.images.shape == (2, 3, 28, 28)
    for i, c in enumerate(ref_test):
        for k, f in enumerate(list_images(c, ".png")):
            np.testing.assert_array_equal(test.images[i, k].astype(np.float32),
                                          original_read(f, 0))
    f = list_images(ref_train[2], ".png")[1]
    np.testing.assert_array_equal(train.images[4 * 2 + 3, 1].astype(np.float32),
                                  original_read(f, 270))


def test_load_seed_changes_split(small_omniglot):
    a, _ = omniglot.load(small_omniglot, num_train=3, seed=0)
    b, _ = omniglot.load(small_omniglot, num_train=3, seed=2)
    assert omniglot.split_characters(omniglot.list_characters(small_omniglot), 3, 0) != \
        omniglot.split_characters(omniglot.list_characters(small_omniglot), 3, 2)
    assert a.names != b.names


def test_load_default_num_train_too_large_for_small_data(small_omniglot):
    with pytest.raises(ValueError, match="num_train 1200"):
        omniglot.load(small_omniglot)


# ------------------------------------------------------------------ real data

def test_real_omniglot(real_omniglot_dir):
    chars = omniglot.list_characters(real_omniglot_dir)
    assert len(chars) == 136  # images_background_small1: 5 alphabets
    train, test = omniglot.load(real_omniglot_dir, num_train=100, seed=0)
    assert train.images.shape == (400, 20, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (36, 20, 28, 28)
    assert (train.counts == 20).all() and (test.counts == 20).all()
    for pool in (train, test):
        assert set(np.unique(pool.images)) == {0, 255}
        background = (pool.images == 255).mean()
        assert 0.85 < background < 0.97, background
    # Spot check against the original recipe on real files.
    c = original_split(chars, 100, 0)[0][5]
    f = list_images(c, ".png")[7]
    for j, r in enumerate((0, 90, 180, 270)):
        np.testing.assert_array_equal(train.images[4 * 5 + j, 7].astype(np.float32),
                                      original_read(f, r))
