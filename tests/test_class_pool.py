"""Tests of `supervised_reptile.class_pool`: the padded uint8 pool every sampler draws from."""

import os

import numpy as np
import pytest

from supervised_reptile.data.class_pool import (PIXEL_SCALE, BadImageError, ClassPool, decode_classes,
                                           list_images)


def _fake_decode(path):
    """Decodes a fake path 'c<class>_i<index>' into a [2, 3] array encoding both."""
    name = os.path.basename(path)
    c, i = (int(part[1:]) for part in name.split("_"))
    out = np.zeros((2, 3), np.uint8)
    out[0] = c + 1
    out[1] = i + 1
    return out


def _files(counts):
    return [[f"/nowhere/c{c}_i{i}" for i in range(n)] for c, n in enumerate(counts)]


def test_pixel_scale_is_255():
    assert PIXEL_SCALE == 255.0


def test_decode_classes_pads_ragged_classes_and_counts():
    counts = [3, 1, 5, 2]
    pool = decode_classes(_files(counts), _fake_decode, (2, 3), ["a", "b", "c", "d"], workers=3)
    assert pool.images.dtype == np.uint8
    assert pool.images.shape == (4, 5, 2, 3)
    assert pool.counts.dtype == np.int32
    np.testing.assert_array_equal(pool.counts, counts)
    assert pool.names == ("a", "b", "c", "d")
    assert pool.num_classes == 4
    assert pool.image_shape == (2, 3)
    assert pool.min_count == 1
    for c, n in enumerate(counts):
        # Padding rows are exactly zero.
        assert not pool.images[c, n:].any()
        # Real rows are all non-zero (the fake decoder writes values >= 1).
        assert (pool.images[c, :n] > 0).all()


def test_decode_classes_puts_each_file_at_its_class_and_index():
    counts = [4, 7, 2, 6, 1, 5]
    files = _files(counts)
    pool = decode_classes(files, _fake_decode, (2, 3), [str(c) for c in range(6)], workers=4)
    for c, n in enumerate(counts):
        for i in range(n):
            np.testing.assert_array_equal(pool.images[c, i], _fake_decode(files[c][i]))
            assert pool.images[c, i, 0, 0] == c + 1 and pool.images[c, i, 1, 0] == i + 1


def test_decode_classes_calls_decode_once_per_file():
    seen = []

    def decode(path):
        seen.append(path)
        return _fake_decode(path)

    files = _files([2, 3])
    decode_classes(files, decode, (2, 3), ["x", "y"], workers=2)
    assert sorted(seen) == sorted(p for f in files for p in f)


def test_decode_classes_uses_the_given_names_in_order():
    pool = decode_classes(_files([1, 1, 1]), _fake_decode, (2, 3), ["z", "a", "m"])
    assert pool.names == ("z", "a", "m")


def test_uint8_is_required():
    images = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="uint8.*float32"):
        ClassPool(images, np.array([3, 3], np.int32), ("a", "b"))


@pytest.mark.parametrize("num_names, num_counts", [(1, 2), (3, 2), (2, 1), (2, 3)])
def test_mismatched_rows_counts_names_error(num_names, num_counts):
    images = np.zeros((2, 3, 4), np.uint8)
    counts = np.full(num_counts, 3, np.int32)
    names = tuple(f"n{k}" for k in range(num_names))
    with pytest.raises(ValueError, match=f"2 image rows, {num_counts} counts and {num_names} names"):
        ClassPool(images, counts, names)


def test_min_count_and_properties():
    pool = ClassPool(np.zeros((3, 6, 5, 4, 2), np.uint8), np.array([6, 2, 4], np.int32),
                     ("a", "b", "c"))
    assert pool.min_count == 2
    assert pool.num_classes == 3
    assert pool.image_shape == (5, 4, 2)


def test_pool_is_frozen():
    pool = ClassPool(np.zeros((1, 1, 1), np.uint8), np.array([1], np.int32), ("a",))
    with pytest.raises(Exception):
        pool.counts = np.array([2], np.int32)


def test_list_images_sorted_and_suffix_case_sensitive(tmp_path):
    for name in ["b.png", "a.png", "c.PNG", "d.png.txt", "e.jpg", "0.png"]:
        (tmp_path / name).write_bytes(b"")
    assert list_images(str(tmp_path), ".png") == [
        os.path.join(str(tmp_path), n) for n in ["0.png", "a.png", "b.png"]]
    assert list_images(str(tmp_path), ".PNG") == [os.path.join(str(tmp_path), "c.PNG")]


# -- unreadable images ------------------------------------------------

def _valid_bytes(kind, rng):
    from io import BytesIO
    from PIL import Image
    arr = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    buf = BytesIO()
    Image.fromarray(arr).save(buf, format="PNG" if kind == "png" else "JPEG")
    return buf.getvalue()


def _fuzz_file(kind, rng, valid):
    """Random bytes, a valid header then random bytes, a truncated file, or flipped bytes."""
    mode = rng.integers(4)
    if mode == 0:
        return rng.bytes(int(rng.integers(0, 2000)))
    if mode == 1:
        return valid[:int(rng.integers(8, 64))] + rng.bytes(int(rng.integers(0, 2000)))
    if mode == 2:
        return valid[:int(rng.integers(0, len(valid)))]
    data = bytearray(valid)
    for pos in rng.integers(0, len(data), int(rng.integers(1, 20))):
        data[pos] = int(rng.integers(256))
    return bytes(data)


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_fuzzed_files_give_only_the_clear_error(tmp_path, kind):
    """Random bytes as PNG/JPEG through the real loaders: BadImageError or a decode."""
    from supervised_reptile.data import miniimagenet, omniglot
    rng = np.random.default_rng(5)
    valid = _valid_bytes(kind, rng)
    read, shape, suffix = ((omniglot.read_image, (28, 28), ".png") if kind == "png" else
                           (miniimagenet.read_image, (84, 84, 3), ".JPEG"))
    paths = []
    for i in range(60):
        paths.append(str(tmp_path / f"f{i:02d}{suffix}"))
        with open(paths[-1], "wb") as f:
            f.write(valid if i == 0 else _fuzz_file(kind, rng, valid))
    skipped = []
    pool = decode_classes([paths], read, shape, ["c"], on_skip=skipped.append)
    assert pool.counts[0] + len(skipped) == len(paths)
    assert 10 < len(skipped) < len(paths)  # at least the intact file decodes
    assert all(line.startswith("skipped unreadable image '") for line in skipped)
    with pytest.raises(BadImageError) as exc:
        decode_classes([paths], read, shape, ["c"])
    assert len(exc.value.bad) == len(skipped)
    assert str(exc.value).startswith(f"cannot read image {exc.value.bad[0][0]!r}")


def test_skipping_bad_images_keeps_the_good_ones_in_order(tmp_path):
    from supervised_reptile.data import omniglot
    from conftest import make_omniglot
    chars = omniglot.list_characters(make_omniglot(tmp_path / "o", 1, 2, drawings=4))
    files = [list_images(c, ".png") for c in chars]
    clean = decode_classes(files, omniglot.read_image, (28, 28), chars)
    with open(files[1][1], "wb") as f:
        f.write(b"<html><body>502 Bad Gateway</body></html>")
    skipped = []
    pool = decode_classes(files, omniglot.read_image, (28, 28), chars, on_skip=skipped.append)
    assert pool.counts.tolist() == [4, 3]
    np.testing.assert_array_equal(pool.images[0], clean.images[0])
    np.testing.assert_array_equal(pool.images[1, :3], clean.images[1, [0, 2, 3]])
    assert not pool.images[1, 3].any()
    assert skipped == [f"skipped unreadable image {files[1][1]!r}: it is an HTML/XML page, not "
                       "an image (a failed download saved as an image?)"]
