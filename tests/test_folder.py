"""Tests of `supervised_reptile.data.folder`: a user's own `{train,val,test}/<class>/*`
folders with odd names, mixed formats and colour modes, and files to ignore."""

import os

import numpy as np
import pytest
from PIL import Image

from supervised_reptile.data import folder, registry

RED, CYAN = (255, 0, 0), (0, 255, 255)
PALETTE = [(0, 0, 0), (10, 200, 30), (250, 120, 5), (40, 60, 220)]  # index 0 transparent


def _save(path, img, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, **kwargs)
    return path


def _touch(path, data=b"not an image"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _grey3(grey):
    """[H, W] -> [H, W, 3]."""
    return np.repeat(grey[..., None], 3, -1)


def make_user_folders(root, seed=0):
    """Writes the odd dataset; returns split -> class -> [uint8 [32, 32, 3] expected for
    `ImageFolders(root, 32, 3)`, in file-name order], each computed without the loader."""
    rng = np.random.default_rng(seed)
    root = str(root)
    expected = {"train": {}, "val": {}, "test": {}}

    # CMYK JPEG (solid blocks decode exactly) and a 16-bit greyscale PNG.
    cls = os.path.join(root, "train", "cmyk & 16-bit")
    cmyk = np.zeros((32, 32, 4), np.uint8)
    cmyk[:, :16] = (0, 255, 255, 0)   # red
    cmyk[:, 16:] = (255, 0, 0, 0)     # cyan
    cmyk[:16, 16:] = (0, 0, 0, 255)   # black
    _save(os.path.join(cls, "a cmyk.jpeg"), Image.fromarray(cmyk, "CMYK"), quality=95)
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, :16], rgb[16:, 16:] = RED, CYAN
    deep = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 37 + 1000)
    img = Image.fromarray(deep)
    assert img.mode == "I;16"
    _save(os.path.join(cls, "b deep.png"), img)
    expected["train"]["cmyk & 16-bit"] = [
        rgb, _grey3((deep.astype(np.float64) * 255 / deep.max()).astype(np.uint8))]

    # Upper-case extensions: a JPEG of another size (resized) and an RGBA PNG.
    cls = os.path.join(root, "train", "red fox")
    photo = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = _save(os.path.join(cls, "a photo.JpG"), Image.fromarray(photo), quality=90)
    with Image.open(path) as img:  # lossy: Pillow's decode of it, resized as documented
        expected["train"]["red fox"] = [np.asarray(img.convert("RGB").resize((32, 32),
                                                                             Image.BILINEAR))]
    rgba = rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    rgba[:, :10, 3], rgba[:, 10:, 3] = 0, 255
    want = rgba[..., :3].copy()
    want[:, :10] = 255  # transparent -> white
    _save(os.path.join(cls, "b c.PNG"), Image.fromarray(rgba, "RGBA"))
    expected["train"]["red fox"].append(want)
    _touch(os.path.join(cls, ".DS_Store"), b"\0\0\0\1Bud1")
    _touch(os.path.join(cls, "notes.txt"), b"taken at dusk")
    _save(os.path.join(cls, "._a photo.JpG"), Image.fromarray(photo))  # a macOS shadow file

    # Unicode class: palette PNG with a transparent index, greyscale PNG, solid GIF.
    cls = os.path.join(root, "train", "Ünïcode 猫 ñ")
    index = rng.integers(0, 4, (32, 32), dtype=np.uint8)
    pal = Image.fromarray(index, "P")
    pal.putpalette([v for colour in PALETTE for v in colour])
    _save(os.path.join(cls, "1 palette.png"), pal, transparency=0)
    want = np.array(PALETTE, np.uint8)[index]
    want[index == 0] = 255
    grey = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    _save(os.path.join(cls, "2 grey.png"), Image.fromarray(grey, "L"))
    _save(os.path.join(cls, "3 solid.gif"), Image.new("RGB", (50, 20), (12, 34, 56)))
    expected["train"]["Ünïcode 猫 ñ"] = [want, _grey3(grey),
                                         np.full((32, 32, 3), (12, 34, 56), np.uint8)]

    # Ignored next to the classes: a hidden folder of images, a notes file.
    _save(os.path.join(root, "train", ".cache", "x.png"), Image.fromarray(grey, "L"))
    _touch(os.path.join(root, "train", "notes.txt"))
    _touch(os.path.join(root, ".DS_Store"))

    for split, names in (("val", ("b", "a")), ("test", ("z", "é"))):
        for k, name in enumerate(names):
            pixels = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(k + 1)]
            for i, p in enumerate(pixels):
                _save(os.path.join(root, split, name, f"{i}.png"), Image.fromarray(p))
            expected[split][name] = pixels
    return root, expected


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    return make_user_folders(tmp_path_factory.mktemp("user") / "my data")


def test_read_split_decodes_every_mode(user):
    root, expected = user
    form = folder.ImageFolders(root, 32, 3)
    for split, classes in expected.items():
        pool = form.read_split(split)
        names = tuple(sorted(classes))
        assert pool.names == names
        assert pool.counts.tolist() == [len(classes[n]) for n in names]
        assert pool.images.dtype == np.uint8
        assert pool.images.shape == (len(names), max(pool.counts), 32, 32, 3)
        for c, name in enumerate(names):
            for k, want in enumerate(classes[name]):
                np.testing.assert_array_equal(pool.images[c, k], want,
                                              err_msg=f"{split}/{name}/{k}")
            assert not pool.images[c, len(classes[name]):].any()
    assert form.read_split("train").names == ("cmyk & 16-bit", "red fox", "Ünïcode 猫 ñ")


def test_half_transparent_pixels_are_laid_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = (0, 100, 200), 51  # 20% opaque
    img = Image.fromarray(rgba, "RGBA")
    got = folder.to_array(img, 8, 3).astype(int)
    np.testing.assert_allclose(got, np.broadcast_to([204, 224, 244], (8, 8, 3)), atol=1)
    la = Image.fromarray(rgba[..., [1, 3]].copy(), "LA")
    np.testing.assert_allclose(folder.to_array(la, 8, 1).astype(int), 224, atol=1)


def test_scan_ignores_hidden_files_folders_and_notes(user):
    root, expected = user
    scan = folder.ImageFolders(root, 32, 3).scan()
    assert scan == {s: {n: len(v) for n, v in sorted(c.items())} for s, c in expected.items()}
    assert folder.list_images(os.path.join(root, "train", "red fox")) == [
        os.path.join(root, "train", "red fox", n) for n in ("a photo.JpG", "b c.PNG")]
    assert len(folder.ImageFolders(root, 32, 3).sources()) == 7 + 3 + 3


def test_one_channel(user):
    root, expected = user
    pool = folder.ImageFolders(root, 32, 1).read_split("train")
    assert pool.images.shape == (3, 3, 32, 32, 1)
    deep, photo = expected["train"]["cmyk & 16-bit"][1], expected["train"]["red fox"][1]
    np.testing.assert_array_equal(pool.images[0, 1, ..., 0], deep[..., 0])  # grey stays grey
    np.testing.assert_array_equal(pool.images[2, 1, ..., 0],
                                  expected["train"]["Ünïcode 猫 ñ"][1][..., 0])
    # RGB -> L with ITU-R 601 weights; transparent pixels white.
    luma = photo.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(pool.images[1, 1, ..., 0], luma, atol=1)
    assert (pool.images[1, 1, :, :10, 0] == 255).all()


def _one_image_dataset(root, images):
    """`images`: train class -> (size, mode) of its single image (None: only notes.txt);
    val/ and test/ each get one RGB image."""
    for name, spec in images.items():
        if spec is None:
            _touch(os.path.join(root, "train", name, "notes.txt"))
            continue
        (w, h), mode = spec
        pixels = (np.arange(w * h, dtype=np.uint16).reshape(h, w) * 9)
        img = Image.fromarray(pixels) if mode == "I;16" else Image.fromarray(
            (pixels % 256).astype(np.uint8)).convert(mode)
        _save(os.path.join(root, "train", name, "img.png"), img)
    for split in ("val", "test"):
        _save(os.path.join(root, split, "c", "img.png"), Image.new("RGB", (7, 7)))
    return str(root)


@pytest.mark.parametrize("images, shape", [
    ({"a": ((32, 32), "RGB")}, (32, 32, 3)),
    ({"a": ((84, 84), "RGBA")}, (84, 84, 3)),
    ({"a": ((100, 100), "RGB")}, (84, 84, 3)),   # square but larger than 84
    ({"a": ((40, 30), "RGB")}, (84, 84, 3)),     # not square
    ({"a": ((40, 40), "L")}, (40, 40, 1)),
    ({"a": ((48, 48), "I;16")}, (48, 48, 1)),
    ({"a": ((20, 20), "RGB"), "b": ((28, 28), "L")}, (20, 20, 3)),  # the first class decides
    ({"a": None, "b": ((28, 28), "L")}, (28, 28, 1)),  # a class without images is passed over
], ids=["32rgb", "84rgba", "100", "40x30", "40grey", "48deep", "first", "skip-empty"])
def test_shape_is_inferred_from_the_first_training_image(tmp_path, images, shape):
    root = _one_image_dataset(tmp_path / "d", images)
    form = folder.ImageFolders(root)
    assert form.image_shape == shape
    assert form.decoder == folder.ImageFolders(root, shape[0], shape[2]).decoder
    assert form.read_split("val").images.shape == (1, 1) + shape
    assert folder.ImageFolders(root, 16).image_shape == (16, 16, shape[2])
    assert folder.ImageFolders(root, 0, 3).image_shape == (shape[0], shape[0], 3)


def test_decoder_and_fingerprint_follow_size_and_channels(user):
    root, _ = user
    made = {(s, c): folder.ImageFolders(root, s, c) for s in (28, 32) for c in (1, 3)}
    assert len({f.decoder for f in made.values()}) == 4
    assert len({f.fingerprint() for f in made.values()}) == 4
    assert made[28, 3].fingerprint() == folder.ImageFolders(root, 28, 3).fingerprint()
    assert folder.ImageFolders(root).fingerprint() == made[32, 3].fingerprint()  # 32x32 CMYK


def test_class_without_images_is_named(tmp_path):
    root = _one_image_dataset(tmp_path / "d", {"a": ((8, 8), "RGB")})
    _touch(os.path.join(root, "val", "empty one", "notes.txt"))
    form = folder.ImageFolders(root, 8, 3)
    assert form.scan()["val"] == {"c": 1, "empty one": 0}
    with pytest.raises(FileNotFoundError) as err:
        form.read_split("val")
    assert repr(os.path.join(root, "val", "empty one")) in str(err.value)
    assert form.read_split("test").counts.tolist() == [1]


def test_bad_arguments_are_named(tmp_path):
    root = _one_image_dataset(tmp_path / "d", {"a": ((8, 8), "RGB")})
    with pytest.raises(ValueError, match="channels 2 is not supported"):
        folder.ImageFolders(root, 8, 2)
    with pytest.raises(ValueError, match="image size -1"):
        folder.ImageFolders(root, -1, 3)
    with pytest.raises(ValueError, match="'validation'"):
        folder.ImageFolders(root, 8, 3).read_split("validation")
    empty = tmp_path / "no images"
    _touch(str(empty / "train" / "a" / "notes.txt"))
    with pytest.raises(FileNotFoundError, match="no images in the class folders"):
        folder.ImageFolders(str(empty))


def test_registry_tells_user_folders_from_miniimagenet(user, tmp_path):
    root, _ = user
    assert registry.guess(root) == "folder"
    found = registry.find(root, "folder", 32, 1)
    assert type(found) is folder.ImageFolders and found.image_shape == (32, 32, 1)
    wnids = _one_image_dataset(tmp_path / "w", {"n01532829": ((8, 8), "RGB"),
                                                "n01558993": ((8, 8), "RGB")})
    assert registry.guess(wnids) == "miniimagenet"
    _touch(os.path.join(wnids, "train", "cat", "img.png"))
    assert registry.guess(wnids) == "folder"  # one class that is not a wnid
