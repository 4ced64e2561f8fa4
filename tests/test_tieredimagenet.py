"""Tests of `supervised_reptile.data.tieredimagenet`: both forms, written from one tiny dataset."""

import io
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from supervised_reptile.data import tieredimagenet as tiered
from supervised_reptile.data.class_pool import BadImageError
from supervised_reptile.data.forms import SPLITS

# Per split: class wnid -> images. Sizes vary so that some images are resized.
WNIDS = {"train": ["n03000003", "n01000001", "n02000002", "n04000004"],
         "val": ["n05000005", "n06000006", "n07000007"],
         "test": ["n08000008", "n09000009", "n09500000"]}
IMAGES_PER_CLASS = {"n01000001": 3, "n02000002": 4, "n03000003": 2, "n04000004": 3}


class _Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2 wrote them: every str and bytes a Python 2
    `str` (BINSTRING), numpy's globals under their Python 2 module names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        data = obj.encode("utf-8") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "")
        if not module.startswith("numpy._core"):
            return super().save_global(obj, name)
        module = "numpy.core" + module[len("numpy._core"):]
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _nearest(arr: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).convert("RGB").resize((84, 84), Image.NEAREST))


def make_source(seed=0):
    """Split -> wnid -> list of (PNG bytes, expected uint8 [84, 84, 3])."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, wnids in WNIDS.items():
        data[split] = {}
        for w in wnids:
            items = []
            for k in range(IMAGES_PER_CLASS.get(w, 2)):
                shape = (84, 84, 3) if k % 2 == 0 else (90, 100, 3)
                arr = rng.integers(0, 256, shape, dtype=np.uint8)
                if split == "val" and k == 1:
                    arr = arr[..., 0]  # a grayscale PNG
                expected = arr if shape[:2] == (84, 84) else _nearest(arr)
                items.append((_png(arr), np.asarray(Image.fromarray(expected).convert("RGB"))))
            data[split][w] = items
    return data


def write_folders(root, data):
    for split, classes in data.items():
        for w, items in classes.items():
            os.makedirs(os.path.join(root, split, w))
            for k, (png, _) in enumerate(items):
                with open(os.path.join(root, split, w, f"{w}{k + 1:08d}.png"), "wb") as f:
                    f.write(png)
    return str(root)


def write_pickles(root, data, entry="array", py2=True, bytes_keys=False):
    """Ren et al.'s files: images interleaved across classes, names in file order
    (not sorted), each entry as `cv2.imencode` gives it ("array"), as bytes, or
    the list as a numpy object array ("object")."""
    os.makedirs(root, exist_ok=True)
    for split, classes in data.items():
        names = list(classes)  # WNIDS order: unsorted
        images, labels = [], []
        for k in range(max(len(v) for v in classes.values())):
            for label, w in enumerate(names):
                if k < len(classes[w]):
                    png = classes[w][k][0]
                    images.append(png if entry == "bytes" else
                                  np.frombuffer(png, np.uint8).reshape(-1, 1))
                    labels.append(label)
        if entry == "object":
            array = np.empty(len(images), object)
            for i, png in enumerate(images):
                array[i] = png
            images = array
        key = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
        label_dict = {key("label_specific"): np.array(labels, np.int32),
                      key("label_general"): np.zeros(len(labels), np.int32),
                      key("label_specific_str"): [key(n) for n in names],
                      key("label_general_str"): [key("category")]}
        for name, obj in ((f"{split}_images_png.pkl", images), (f"{split}_labels.pkl", label_dict)):
            with open(os.path.join(root, name), "wb") as f:
                if py2:
                    _Py2Pickler(f, protocol=2).dump(obj)
                else:
                    pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    return str(root)


@pytest.fixture(scope="module")
def source():
    return make_source()


@pytest.fixture
def both(tmp_path, source):
    return (tiered.TieredPickles(write_pickles(tmp_path / "pkl", source)),
            tiered.TieredFolders(write_folders(tmp_path / "dirs", source)))


def _assert_same_pool(a, b):
    assert a.names == b.names
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.images, b.images)


def test_detect_tells_the_forms_apart(both, tmp_path):
    pickles, folders = both
    assert tiered.TieredPickles.detect(pickles.data_dir)
    assert not tiered.TieredFolders.detect(pickles.data_dir)
    assert tiered.TieredFolders.detect(folders.data_dir)
    assert not tiered.TieredPickles.detect(folders.data_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not tiered.TieredPickles.detect(str(empty))
    assert not tiered.TieredFolders.detect(str(empty))
    for s in SPLITS:  # split folders without any class folder
        (empty / s).mkdir()
    assert not tiered.TieredFolders.detect(str(empty))
    os.remove(os.path.join(pickles.data_dir, "val_labels.pkl"))
    assert not tiered.TieredPickles.detect(pickles.data_dir)


def test_scan_counts_classes_and_images(both):
    expected = {s: {w: IMAGES_PER_CLASS.get(w, 2) for w in sorted(ws)} for s, ws in WNIDS.items()}
    for form in both:
        assert form.scan() == expected
        assert list(form.scan()["train"]) == sorted(WNIDS["train"])
        assert form.image_shape == (84, 84, 3)
        assert form.dataset == "tieredimagenet" and type(form) in tiered.FORMS


def test_pools_equal_across_forms_and_match_the_sources(both, source):
    pickles, folders = both
    for split in SPLITS:
        pool = pickles.read_split(split)
        _assert_same_pool(pool, folders.read_split(split))
        assert pool.names == tuple(sorted(WNIDS[split]))
        assert pool.images.dtype == np.uint8 and pool.image_shape == (84, 84, 3)
        for c, w in enumerate(pool.names):
            items = source[split][w]
            assert pool.counts[c] == len(items)
            for k, (_, expected) in enumerate(items):
                # 84x84 PNGs exactly (lossless); others resized with NEAREST.
                np.testing.assert_array_equal(pool.images[c, k], expected)
            assert not pool.images[c, len(items):].any()  # padding stays zero


@pytest.mark.parametrize("entry,py2,bytes_keys", [
    ("bytes", True, False),        # entries as Python 2 byte strings
    ("object", True, False),       # a numpy object array of cv2 arrays
    ("array", False, True),        # re-saved by Python 3 after loading with "bytes"
    ("bytes", False, False),       # a Python 3 pickle with str keys
])
def test_pickle_variants_read_the_same(tmp_path, source, both, entry, py2, bytes_keys):
    form = tiered.TieredPickles(write_pickles(tmp_path / "v", source, entry, py2, bytes_keys))
    assert form.scan() == both[0].scan()
    _assert_same_pool(form.read_split("val"), both[1].read_split("val"))


def test_python2_pickles_hold_python2_strings(both):
    # The fixture's pickles are Python-2 style: str keys come back as bytes.
    with open(os.path.join(both[0].data_dir, "train_labels.pkl"), "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert b"label_specific_str" in raw and raw[b"label_specific_str"][0] == b"n03000003"
    assert all(isinstance(n, str) for n in both[0].read_split("train").names)


def _corrupt(form, split="train"):
    """Breaks the second image of the first sorted class; returns the name it is reported by."""
    if isinstance(form, tiered.TieredFolders):
        path = os.path.join(form.data_dir, split, "n01000001", "n0100000100000002.png")
        with open(path, "r+b") as f:
            f.seek(40)
            f.write(b"\0" * 200)
        return path
    path = os.path.join(form.data_dir, f"{split}_images_png.pkl")
    with open(path, "rb") as f:
        images = pickle.load(f, encoding="bytes")
    index = 4 + 1  # round 1 of the interleaving, label 1 = n01000001
    images[index] = np.frombuffer(b"\x89PNG\r\n\x1a\nbroken", np.uint8).reshape(-1, 1)
    with open(path, "wb") as f:
        pickle.dump(images, f, protocol=2)
    return f"{path}[{index}]"


@pytest.mark.parametrize("which", [0, 1], ids=["pickles", "folders"])
def test_corrupt_image_raises_or_is_skipped(both, which):
    form, other = both[which], both[1 - which]
    name = _corrupt(form)
    with pytest.raises(BadImageError) as err:
        form.read_split("train")
    assert name in str(err.value) and err.value.bad[0][0] == name
    skipped = []
    pool = form.read_split("train", on_skip=skipped.append)
    assert len(skipped) == 1 and name in skipped[0]
    full = other.read_split("train")
    assert pool.names == full.names and pool.counts[0] == full.counts[0] - 1
    np.testing.assert_array_equal(pool.images[0, 0], full.images[0, 0])
    np.testing.assert_array_equal(pool.images[0, 1:3], full.images[0, 2:4])
    assert not pool.images[0, 3:].any()
    np.testing.assert_array_equal(pool.images[1:], full.images[1:])


@pytest.mark.parametrize("which", [0, 1], ids=["pickles", "folders"])
def test_allocate_is_honoured(both, tmp_path, which):
    calls = []

    def allocate(shape, dtype):
        calls.append((shape, dtype))
        return np.lib.format.open_memmap(str(tmp_path / f"store{which}.npy"), "w+", dtype, shape)

    pool = both[which].read_split("test", allocate=allocate)
    assert calls == [((3, 2, 84, 84, 3), np.uint8)]
    assert isinstance(pool.images, np.memmap)
    assert pool.images.filename == str(tmp_path / f"store{which}.npy")
    _assert_same_pool(pool, both[1 - which].read_split("test"))


@pytest.mark.parametrize("which", [0, 1], ids=["pickles", "folders"])
def test_fingerprint_follows_the_sources(both, which):
    form = both[which]
    before = form.fingerprint()
    assert before == type(form)(form.data_dir).fingerprint()
    path = sorted(form.sources())[-1]
    if which == 1:
        assert len(form.sources()) == sum(IMAGES_PER_CLASS.get(w, 2)
                                          for ws in WNIDS.values() for w in ws)
    else:
        assert len(form.sources()) == 6
    stat = os.stat(path)
    with open(path, "ab") as f:
        f.write(b"\0")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert form.fingerprint() != before


def test_folders_read_every_image_suffix_and_skip_hidden_files(tmp_path, source):
    root = write_folders(tmp_path / "dirs", source)
    d = os.path.join(root, "train", "n01000001")
    png = source["train"]["n01000001"][0][0]
    for name in ("a.jpg", "b.jpeg", "c.JPEG", "d.PNG", "._e.png", "notes.txt", "f.gif"):
        with open(os.path.join(d, name), "wb") as f:
            f.write(png)
    os.makedirs(os.path.join(root, "train", ".cache"))
    form = tiered.TieredFolders(root)
    assert form.scan()["train"]["n01000001"] == 3 + 4
    assert ".cache" not in form.scan()["train"]


def test_shared_class_names_are_made_unique(tmp_path, source):
    data = {s: dict(source[s]) for s in SPLITS}
    root = write_pickles(tmp_path / "p", data)
    path = os.path.join(root, "test_labels.pkl")
    with open(path, "rb") as f:
        labels = pickle.load(f, encoding="bytes")
    labels[b"label_specific_str"] = [b"crane", b"crane", b"tench"]
    with open(path, "wb") as f:
        pickle.dump(labels, f, protocol=2)
    pool = tiered.TieredPickles(root).read_split("test")
    assert pool.names == ("crane [label 0]", "crane [label 1]", "tench")


def test_bad_labels_are_named(tmp_path, source):
    root = write_pickles(tmp_path / "p", source)
    path = os.path.join(root, "val_labels.pkl")
    with open(path, "wb") as f:
        pickle.dump({"label_specific": np.array([0, 5])}, f, protocol=2)
    with pytest.raises(ValueError, match="label_specific_str"):
        tiered.TieredPickles(root).scan()
    with open(path, "wb") as f:
        pickle.dump({"label_specific": np.array([0, 5]), "label_specific_str": ["a"]}, f)
    with pytest.raises(ValueError, match="holds 5, outside the 1 names"):
        tiered.TieredPickles(root).read_split("val")
    with open(path, "wb") as f:
        pickle.dump({"label_specific": np.array([0]), "label_specific_str": ["a"]}, f)
    with pytest.raises(ValueError, match="holds 6 images but its labels file labels 1"):
        tiered.TieredPickles(root).read_split("val")


def test_missing_pickle_points_at_the_unpacked_folder(tmp_path, source):
    write_pickles(tmp_path / "tiered-imagenet", source)
    with pytest.raises(FileNotFoundError, match="pass that folder"):
        tiered.TieredPickles(str(tmp_path)).scan()


def test_notes_name_splits_off_the_standard_counts(both):
    assert tiered.notes({s: dict.fromkeys(range(n), 1) for s, n in tiered.CLASSES.items()}) == [
        f"the splits hold 608 images; tieredImageNet has {tiered.IMAGES}"]
    lines = tiered.notes(both[0].scan())
    assert lines[:3] == ["split train has 4 classes; tieredImageNet has 351",
                         "split val has 3 classes; tieredImageNet has 97",
                         "split test has 3 classes; tieredImageNet has 160"]
    counts = {"train": 448695, "val": 124261, "test": 206209}  # Ren et al.'s images per split
    full = {s: {f"c{i}": (counts[s] // n + (i < counts[s] % n)) for i in range(n)}
            for s, n in tiered.CLASSES.items()}
    assert tiered.notes(full) == []


def test_module_does_not_import_tensorflow():
    code = ("import sys; import supervised_reptile.data.tieredimagenet\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
