"""Tests of `supervised_reptile.class_pool`: the padded uint8 pool every sampler draws from."""

import os

import numpy as np
import pytest

from supervised_reptile.class_pool import PIXEL_SCALE, ClassPool, decode_classes, list_images


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
