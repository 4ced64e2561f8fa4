"""Mini-ImageNet in its three common forms -> class pools (no TensorFlow).

Forms (each a `forms.Form`, all read into the same pools):
  * `OriginalLayout`: `{train,val,test}/<wnid>/*.JPEG`, what the original's
    `fetch_data.sh` (and ours) produces from the ILSVRC2012 training tar.
  * `CsvLayout`: Ravi & Larochelle's `images/*.jpg` plus `train.csv`,
    `val.csv`, `test.csv` (`filename,label`, label = wnid), as MAML-Pytorch
    and cbfinn/maml use it. Its file names (`<wnid><8 digits>.jpg`) do not
    name the ILSVRC file, so the class lists are what tie it to the split.
  * `PickleCache`: learn2learn's and torchmeta's
    `mini-imagenet-cache-{train,val,test}.pkl`, each a dict with `image_data`
    uint8 `[N, 84, 84, 3]` and `class_dict` wnid -> image indices.

Decoding, as the original: full-size JPEGs squashed to 84x84 with nearest
neighbour (the Pillow 4 default the original ran with; modern Pillow would use
bicubic), the resize done before the RGB conversion. Classes are sorted by
name (the original used the unsorted `os.listdir` order, which made task
sequences machine-dependent).

The standard class split (64/16/20 classes) is read from the shipped
metadata CSVs (`metadata/miniimagenet/`), so `check_data` can tell a copy with
another split (e.g. Vinyals et al.'s) from the standard one by class name.
"""

import csv
import functools
import os
import pickle

import numpy as np
from PIL import Image

from supervised_reptile.data import forms
from supervised_reptile.data.class_pool import ClassPool, list_images

IMAGE_SIZE = 84
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 3)
SPLITS = forms.SPLITS
RESIZE_FILTER = Image.NEAREST
#: The shipped per-class CSVs of the original (MIT): `<split>/<wnid>.csv`.
METADATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "metadata", "miniimagenet")
_DECODER = "84x84x3 nearest, resize before RGB"
#: The standard version: classes per split, images per class.
CLASSES = {"train": 64, "val": 16, "test": 20}
IMAGES_PER_CLASS = 600


def read_image(path: str) -> np.ndarray:
    """One image as uint8 `[84, 84, 3]`."""
    with Image.open(path) as img:
        return np.asarray(img.resize((IMAGE_SIZE, IMAGE_SIZE), RESIZE_FILTER).convert("RGB"),
                          np.uint8)


def list_classes(split_dir: str) -> list[str]:
    """Class directories of one split: entries starting with `n`, sorted."""
    if not os.path.isdir(split_dir):
        raise FileNotFoundError(f"Mini-ImageNet split directory {split_dir!r} does not exist; "
                                "run ./fetch_data.sh or pass `data_dir`")
    return [os.path.join(split_dir, n) for n in sorted(os.listdir(split_dir))
            if n.startswith("n") and os.path.isdir(os.path.join(split_dir, n))]


@functools.lru_cache(maxsize=None)
def standard_split(metadata_dir: str = METADATA_DIR) -> dict[str, tuple[str, ...]]:
    """Split -> sorted wnids of the standard (Ravi & Larochelle) split, from
    the shipped metadata; empty splits if the metadata is absent."""
    split = {}
    for name in SPLITS:
        folder = os.path.join(metadata_dir, name)
        split[name] = tuple(sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".csv"))
                            if os.path.isdir(folder) else ())
    return split


def split_differences(found: dict[str, list[str]],
                      standard: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Lines naming every class that is not where the standard split has it.

    Args:
      found: split -> class names (wnids) of a copy of the dataset.
      standard: split -> wnids; default: `standard_split()`.
    """
    standard = standard_split() if standard is None else standard
    home = {wnid: split for split, wnids in standard.items() for wnid in wnids}
    if not home:
        return []
    lines = []
    for split, names in found.items():
        for name in names:
            if name not in home:
                lines.append(f"class {name} ({split}) is not a Mini-ImageNet class of the "
                             "standard split")
            elif home[name] != split:
                lines.append(f"class {name} is in {split} here but in {home[name]} in the "
                             "standard split")
    present = {name for names in found.values() for name in names}
    missing = [w for w in home if w not in present]
    if missing:
        lines.append(f"{len(missing)} classes of the standard split are missing, e.g. "
                     f"{', '.join(sorted(missing)[:3])}")
    if lines:
        lines.insert(0, f"not the standard Ravi & Larochelle class split (a Vinyals-split or "
                        f"mixed-up copy gives other accuracies): {len(lines)} difference(s)")
    return lines


@functools.lru_cache(maxsize=None)
def standard_counts(metadata_dir: str = METADATA_DIR) -> dict[str, int]:
    """wnid -> images of the class in the standard version (the shipped CSVs'
    lines: 600, or 597-599 for 16 classes whose ILSVRC files the original left out)."""
    counts = {}
    for split, wnids in standard_split(metadata_dir).items():
        for wnid in wnids:
            with open(os.path.join(metadata_dir, split, f"{wnid}.csv")) as f:
                counts[wnid] = sum(1 for line in f if line.strip())
    return counts


def notes(scan: dict[str, dict[str, int]]) -> list[str]:
    """How a scanned copy differs from the standard one: classes per split,
    images per class, and classes outside their standard split."""
    expected = standard_counts()
    lines = []
    for split, counts in scan.items():
        if len(counts) != CLASSES[split]:
            lines.append(f"split {split} has {len(counts)} classes; the original has "
                         f"{CLASSES[split]}")
        odd = {c: n for c, n in counts.items() if n != expected.get(c, IMAGES_PER_CLASS)}
        if odd:
            shown = ", ".join(f"{c} ({n})" for c, n in list(odd.items())[:5])
            more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
            lines.append(f"{len(odd)} {split} classes do not have the original's images "
                         f"({IMAGES_PER_CLASS}, or the shipped metadata's count): {shown}{more}")
    return lines + split_differences({s: list(c) for s, c in scan.items()})


class _MiniImageNetForm(forms.Form):
    """What every Mini-ImageNet form shares (the pickles override reading)."""

    dataset = "miniimagenet"

    @property
    def image_shape(self):
        return IMAGE_SHAPE

    def notes(self, scan):
        return notes(scan)

    def read_image(self, path):
        return read_image(path)


class OriginalLayout(_MiniImageNetForm, forms.FileForm):
    """`{train,val,test}/<wnid>/*.JPEG` (the original's `fetch_data.sh`)."""

    description = "the original's layout, {train,val,test}/<wnid>/*.JPEG"
    decoder = _DECODER
    suffix = ".JPEG"

    @classmethod
    def detect(cls, data_dir):
        return all(os.path.isdir(os.path.join(data_dir, s)) for s in SPLITS)

    def class_files(self, split):
        return {os.path.basename(c): list_images(c, self.suffix)
                for c in list_classes(os.path.join(self.data_dir, split))}


class CsvLayout(_MiniImageNetForm, forms.FileForm):
    """`images/*.jpg` plus `{train,val,test}.csv` of `filename,label` rows."""

    description = "Ravi & Larochelle's layout, images/ plus train.csv, val.csv, test.csv"
    decoder = _DECODER

    @classmethod
    def detect(cls, data_dir):
        return (os.path.isdir(os.path.join(data_dir, "images"))
                and all(os.path.isfile(os.path.join(data_dir, f"{s}.csv")) for s in SPLITS))

    def class_files(self, split):
        """Class -> image paths in the CSV's order."""
        path = os.path.join(self.data_dir, f"{split}.csv")
        classes: dict[str, list[str]] = {}
        with open(path, newline="") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            if header is None or [h.strip() for h in header[:2]] != ["filename", "label"]:
                raise ValueError(f"{path!r} does not start with the header `filename,label` "
                                 f"(got {header!r})")
            for line, row in enumerate(rows, start=2):
                if not row:
                    continue
                if len(row) < 2:
                    raise ValueError(f"{path!r} line {line}: expected `filename,label`, "
                                     f"got {row!r}")
                classes.setdefault(row[1].strip(), []).append(
                    os.path.join(self.data_dir, "images", row[0].strip()))
        return dict(sorted(classes.items()))

    def sources(self):
        return [os.path.join(self.data_dir, f"{s}.csv") for s in SPLITS] + super().sources()


class PickleCache(_MiniImageNetForm):
    """`mini-imagenet-cache-{split}.pkl`: `image_data` and `class_dict`."""

    description = "the learn2learn / torchmeta pickles, mini-imagenet-cache-{train,val,test}.pkl"
    decoder = "decoded uint8 arrays"

    @staticmethod
    def _path(data_dir, split):
        return os.path.join(data_dir, f"mini-imagenet-cache-{split}.pkl")

    @classmethod
    def detect(cls, data_dir):
        return all(os.path.isfile(cls._path(data_dir, s)) for s in SPLITS)

    def _load(self, split) -> tuple[np.ndarray, dict[str, list[int]]]:
        path = self._path(self.data_dir, split)
        with open(path, "rb") as f:
            try:
                data = pickle.load(f)
            except Exception as err:  # noqa: BLE001 - unpickling fails in many ways
                raise ValueError(f"cannot read {path!r}: {type(err).__name__}: {err}") from None
        if not isinstance(data, dict) or not {"image_data", "class_dict"} <= set(data):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path!r} is not a Mini-ImageNet cache: expected a dict with "
                             f"'image_data' and 'class_dict', got {got}")
        images = np.asarray(data["image_data"])
        if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{path!r}: image_data is {images.dtype} {images.shape}; expected "
                             f"uint8 [N, {', '.join(map(str, IMAGE_SHAPE))}]")
        return images, {str(k): list(v) for k, v in data["class_dict"].items()}

    def scan(self):
        return {split: {name: len(idx) for name, idx in sorted(self._load(split)[1].items())}
                for split in SPLITS}

    def read_split(self, split, on_skip=None, allocate=np.zeros):
        del on_skip  # decoded already: nothing can fail to decode
        forms.check_split(split)
        images, classes = self._load(split)
        return forms.pool_from_arrays({name: images[idx] for name, idx in classes.items()},
                                      allocate)

    def sources(self):
        return [self._path(self.data_dir, s) for s in SPLITS]


#: Every form, the order in which `registry.detect` tries them.
FORMS = (OriginalLayout, CsvLayout, PickleCache)


def load_split(split_dir: str, on_skip=None) -> ClassPool:
    """Decodes one split folder of the original layout into a pool."""
    form = OriginalLayout(os.path.dirname(os.path.abspath(split_dir)))
    return form.read_split(os.path.basename(os.path.normpath(split_dir)), on_skip)


def load(data_dir: str) -> tuple[ClassPool, ClassPool, ClassPool]:
    """The train, val and test pools of the original layout."""
    return tuple(OriginalLayout(data_dir).read_split(s) for s in SPLITS)
