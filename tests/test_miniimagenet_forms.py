"""Tests of Mini-ImageNet's three forms (`data.miniimagenet`): one tiny dataset written
as the original layout, Ravi & Larochelle's CSV layout and learn2learn's pickle cache."""

import io
import os
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from supervised_reptile.data import check, miniimagenet, registry
from supervised_reptile.data.class_pool import BadImageError
from supervised_reptile.data.forms import SPLITS

# Real wnids, each in its split of the standard (Ravi & Larochelle) split, listed unsorted.
WNIDS = {"train": ["n01558993", "n01532829", "n01704323"],
         "val": ["n02091244", "n01855672"],
         "test": ["n01981276", "n01930112"]}
COUNTS = {"n01532829": 3, "n01558993": 2, "n01704323": 3, "n02091244": 3, "n01855672": 2,
          "n01981276": 3, "n01930112": 2}
# (width, height, mode) of the k-th image of a class: resized and 84x84 ones, one greyscale.
# No side makes a pixel centre fall on a source pixel edge ((2i + 1) * side / 168 is never
# an integer), where Pillow's rounding and `_nearest_84`'s could pick different pixels.
SHAPES = [(100, 90, "RGB"), (84, 84, "RGB"), (130, 110, "L")]
# ILSVRC-like file numbers: their string order (the loader's) is not their numeric order.
NUMBERS = [10032, 100, 10104]
FORMS = (miniimagenet.OriginalLayout, miniimagenet.CsvLayout, miniimagenet.PickleCache)


def _nearest_84(arr: np.ndarray) -> np.ndarray:
    """Nearest-neighbour 84x84 by index arithmetic (Pillow's pixel centres), grey -> RGB."""
    rows = np.floor((np.arange(84) + 0.5) * arr.shape[0] / 84).astype(int)
    cols = np.floor((np.arange(84) + 0.5) * arr.shape[1] / 84).astype(int)
    out = arr[np.ix_(rows, cols)]
    return np.repeat(out[..., None], 3, -1) if out.ndim == 2 else out


def make_source(seed=0):
    """Split -> wnid -> [(ILSVRC file name, JPEG bytes, expected uint8 [84, 84, 3])],
    each class's list in the loaders' order (sorted file names)."""
    rng = np.random.default_rng(seed)
    source = {}
    for split, wnids in WNIDS.items():
        source[split] = {}
        for w in wnids:
            items = []
            for k in range(COUNTS[w]):
                width, height, mode = SHAPES[k]
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                buf = io.BytesIO()
                Image.fromarray(pixels).convert(mode).save(buf, "JPEG", quality=90)
                with Image.open(io.BytesIO(buf.getvalue())) as img:
                    decoded = np.asarray(img)  # JPEG is lossy: compare with what was stored
                assert decoded.shape[:2] == (height, width)
                items.append((f"{w}_{NUMBERS[k]}.JPEG", buf.getvalue(), _nearest_84(decoded)))
            source[split][w] = sorted(items, key=lambda item: item[0])
    return source


def _interleaved(classes):
    """(wnid, item) of a split's classes taken round-robin, as no form stores them."""
    width = max(len(v) for v in classes.values())
    return [(w, items[k]) for k in range(width) for w, items in classes.items()
            if k < len(items)]


def write_original(root, source):
    for split, classes in source.items():
        for w, items in classes.items():
            os.makedirs(os.path.join(root, split, w))
            for name, jpeg, _ in items:
                with open(os.path.join(root, split, w, name), "wb") as f:
                    f.write(jpeg)
    return str(root)


def write_csv(root, source):
    """`images/<wnid><8 digits>.jpg` and `{split}.csv` rows (classes interleaved)."""
    os.makedirs(os.path.join(root, "images"))
    for split, classes in source.items():
        rows = []
        for w, (_, jpeg, _) in _interleaved(classes):
            name = f"{w}{sum(r.startswith(w) for r in rows) + 1:08d}.jpg"
            rows.append(f"{name},{w}")
            with open(os.path.join(root, "images", name), "wb") as f:
                f.write(jpeg)
        with open(os.path.join(root, f"{split}.csv"), "w", newline="") as f:
            f.write("filename,label\n" + "\n".join(rows) + "\n")
    return str(root)


def write_pickles(root, source, scratch):
    """learn2learn's `mini-imagenet-cache-{split}.pkl` (protocol 4), its arrays made by
    `miniimagenet.read_image` of the JPEG files."""
    os.makedirs(root)
    os.makedirs(scratch, exist_ok=True)
    for split, classes in source.items():
        images, class_dict = [], {}
        for w, (name, jpeg, _) in _interleaved(classes):
            path = os.path.join(scratch, name)
            with open(path, "wb") as f:
                f.write(jpeg)
            class_dict.setdefault(w, []).append(len(images))
            images.append(miniimagenet.read_image(path))
        with open(os.path.join(root, f"mini-imagenet-cache-{split}.pkl"), "wb") as f:
            pickle.dump({"image_data": np.stack(images), "class_dict": class_dict}, f, protocol=4)
    return str(root)


def write_all(root, source):
    """Form class -> the folder holding the dataset in that form."""
    return {miniimagenet.OriginalLayout: write_original(os.path.join(root, "original"), source),
            miniimagenet.CsvLayout: write_csv(os.path.join(root, "csv"), source),
            miniimagenet.PickleCache: write_pickles(os.path.join(root, "pickles"), source,
                                                    os.path.join(root, "scratch"))}


@pytest.fixture(scope="module")
def source():
    return make_source()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory, source):
    return write_all(str(tmp_path_factory.mktemp("mini_forms")), source)


def test_every_form_reads_the_same_pools(dirs, source):
    for split in SPLITS:
        names = tuple(sorted(WNIDS[split]))
        expected = np.zeros((len(names), 3, 84, 84, 3), np.uint8)
        for c, w in enumerate(names):
            for k, (_, _, pixels) in enumerate(source[split][w]):
                expected[c, k] = pixels
        for form, data_dir in dirs.items():
            pool = form(data_dir).read_split(split)
            assert pool.names == names, form
            assert pool.counts.tolist() == [COUNTS[w] for w in names], form
            assert pool.images.dtype == np.uint8
            np.testing.assert_array_equal(pool.images, expected, err_msg=form.__name__)


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
def test_detect_is_true_only_for_its_own_form(dirs, form, tmp_path):
    for other, data_dir in dirs.items():
        assert form.detect(data_dir) == (other is form), (form, other)
    assert not form.detect(str(tmp_path))


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
def test_registry_finds_and_guesses_each_form(dirs, form):
    found = registry.find(dirs[form], "miniimagenet")
    assert type(found) is form and found.data_dir == dirs[form]
    assert registry.guess(dirs[form]) == "miniimagenet"


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
def test_scan_counts_without_decoding(dirs, form):
    scan = form(dirs[form]).scan()
    assert scan == {s: {w: COUNTS[w] for w in sorted(ws)} for s, ws in WNIDS.items()}
    assert all(list(counts) == sorted(counts) for counts in scan.values())


def test_csv_with_a_wrong_header_is_named(tmp_path, source):
    root = write_csv(tmp_path / "csv", source)
    path = os.path.join(root, "val.csv")
    with open(path) as f:
        rows = f.read().splitlines()[1:]
    with open(path, "w") as f:
        f.write("image,class\n" + "\n".join(rows) + "\n")
    form = miniimagenet.CsvLayout(root)
    for call in (form.scan, lambda: form.read_split("val")):
        with pytest.raises(ValueError, match="does not start with the header") as err:
            call()
        assert repr(path) in str(err.value) and "'image', 'class'" in str(err.value)
    assert form.read_split("train").counts.tolist() == [3, 2, 3]  # other splits still read


@pytest.mark.parametrize("content, says", [
    ([np.zeros((1, 84, 84, 3), np.uint8)], "got list"),
    ({"image_data": np.zeros((1, 84, 84, 3), np.uint8)}, "got ['image_data']"),
    ({"image_data": np.zeros((1, 84, 84, 3), np.float32), "class_dict": {"n01532829": [0]}},
     "image_data is float32"),
    ({"image_data": np.zeros((1, 32, 32, 3), np.uint8), "class_dict": {"n01532829": [0]}},
     "(1, 32, 32, 3)"),
    (b"not a pickle", "cannot read"),
], ids=["list", "no-class-dict", "float", "32x32", "garbage"])
def test_pickle_that_is_not_the_cache_is_named(tmp_path, dirs, content, says):
    root = str(tmp_path / "pickles")
    shutil.copytree(dirs[miniimagenet.PickleCache], root)
    path = os.path.join(root, "mini-imagenet-cache-test.pkl")
    with open(path, "wb") as f:
        if isinstance(content, bytes):
            f.write(content)
        else:
            pickle.dump(content, f, protocol=4)
    form = miniimagenet.PickleCache(root)
    with pytest.raises(ValueError) as err:
        form.read_split("test")
    assert repr(path) in str(err.value) and says in str(err.value)
    with pytest.raises(ValueError, match="mini-imagenet-cache-test.pkl"):
        form.scan()
    assert form.read_split("val").names == tuple(sorted(WNIDS["val"]))


def test_split_differences_name_a_class_moved_from_val_to_train():
    standard = miniimagenet.standard_split()
    assert {s: len(standard[s]) for s in SPLITS} == miniimagenet.CLASSES
    assert all(w in standard[s] for s, ws in WNIDS.items() for w in ws)  # the fixture's wnids
    assert miniimagenet.split_differences({s: list(standard[s]) for s in SPLITS}) == []
    moved = standard["val"][3]
    found = {"train": list(standard["train"]) + [moved],
             "val": [w for w in standard["val"] if w != moved], "test": list(standard["test"])}
    assert miniimagenet.split_differences(found) == [
        "not the standard Ravi & Larochelle class split (a Vinyals-split or mixed-up copy "
        "gives other accuracies): 1 difference(s)",
        f"class {moved} is in train here but in val in the standard split"]
    lines = miniimagenet.split_differences(
        {"train": ["n01532829", "n99999999"], "val": [], "test": []})
    assert "class n99999999 (train) is not a Mini-ImageNet class of the standard split" in lines
    assert "99 classes of the standard split are missing, e.g. " in lines[-1]


def test_standard_counts_are_the_shipped_metadata():
    counts = miniimagenet.standard_counts()
    assert len(counts) == 100 and sum(counts.values()) == 59981
    assert set(counts) == {w for ws in miniimagenet.standard_split().values() for w in ws}
    short = {w: n for w, n in counts.items() if n != 600}
    assert len(short) == 16 and all(597 <= n < 600 for n in short.values())
    with open(os.path.join(miniimagenet.METADATA_DIR, "val", "n01855672.csv")) as f:
        assert counts["n01855672"] == sum(1 for line in f if line.strip())


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
def test_check_report_prints_the_form(dirs, form):
    lines = []
    assert check.report(dirs[form], "miniimagenet", log_fn=lines.append) == 0
    assert lines[:5] == [f"miniimagenet in {dirs[form]}", f"  form: {form.description}",
                         "  train: 3 classes, 8 images", "  val: 2 classes, 5 images",
                         "  test: 2 classes, 5 images"]
    assert "note: split train has 3 classes; the original has 64" in lines
    assert not any(line.startswith("problem:") for line in lines)
    assert lines[-1].startswith("usable: no problems found") and lines[-1].endswith(
        "; 18 images opened")


def test_empty_jpeg_in_the_csv_layout_raises_or_is_skipped(tmp_path, source):
    root = write_csv(tmp_path / "csv", source)
    empty = os.path.join(root, "images", "n0193011200000099.jpg")
    open(empty, "wb").close()
    with open(os.path.join(root, "test.csv"), "a") as f:
        f.write("n0193011200000099.jpg,n01930112\n")
    form = miniimagenet.CsvLayout(root)
    assert form.scan()["test"] == {"n01930112": 3, "n01981276": 3}
    with pytest.raises(BadImageError) as err:
        form.read_split("test")
    assert err.value.bad == [(empty, "the file is empty (an interrupted download?)")]
    assert repr(empty) in str(err.value)
    skipped = []
    pool = form.read_split("test", on_skip=skipped.append)
    assert len(skipped) == 1 and repr(empty) in skipped[0]
    assert pool.names == ("n01930112", "n01981276") and pool.counts.tolist() == [2, 3]
    for k, (_, _, pixels) in enumerate(source["test"]["n01930112"]):
        np.testing.assert_array_equal(pool.images[0, k], pixels)
    assert not pool.images[0, 2].any()  # the left-out image's slot is padding
