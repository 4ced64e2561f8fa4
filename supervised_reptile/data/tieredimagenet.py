"""tieredImageNet (Ren et al. 2018) in its two common forms -> class pools (no TensorFlow).

608 ILSVRC-12 classes under 34 super-categories, split 351/97/160 into
train/val/test by super-category; 779,165 images of 84x84 RGB.

`TieredPickles` reads Ren et al.'s `tiered-imagenet.tar` (the file learn2learn,
torchmeta and MetaOptNet load). Per split it holds:

  * `{split}_images_png.pkl`: a pickled list of PNG-encoded images, one per
    image, each the `cv2.imencode('.png', im)[1]` uint8 array of shape
    `[bytes, 1]` (renmengye/few-shot-ssl-public
    `fewshot/data/compress_tiered_imagenet.py`); plain byte strings or a numpy
    object array of either are read too;
  * `{split}_labels.pkl`: a pickled dict with `label_specific` (int array, one
    class index per image), `label_general`, `label_specific_str` (one name per
    class, indexed by `label_specific`) and `label_general_str`
    (few-shot-ssl-public `fewshot/data/tiered_imagenet.py`, `read_cache`).

Both were written by Python 2. As `read_cache` there and torchmeta
`torchmeta/datasets/tieredimagenet.py` do, they load with `encoding="bytes"`:
numpy arrays come back intact, Python 2 strings as bytes, so dict keys may be
bytes or str (a file re-saved by Python 3) and both are accepted. Ren et al.'s
generator fills `label_specific_str` from `class_names.txt` keyed by wnid, so it
may hold wnids or ImageNet's words; the pool uses them as they are (ImageNet
gives two classes the words "crane": a name shared by classes gets ` [label K]`).

`TieredFolders` reads `{train,val,test}/<class>/*.{png,jpg,jpeg,JPEG,PNG}`,
the layout of exporters such as yaoyao-liu/tiered-imagenet-tools
(`tiered_imagenet_generator.py`: `<split>/<wnid>/<wnid>NNNNNNNN.jpg`).
Mini-ImageNet's original layout is the same, so which dataset a folder holds
is the user's choice; `detect` only tells the form within this dataset.

Either form: classes sorted by name, images of a class in file order, decoded
with Pillow to RGB, resized to 84x84 with nearest neighbour (as Mini-ImageNet)
only when not 84x84 already.
"""

import io
import os
import pickle
from typing import Callable

import numpy as np
from PIL import Image

from supervised_reptile.data import forms
from supervised_reptile.data.class_pool import BadImageError, ClassPool

IMAGE_SIZE = 84
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 3)
RESIZE_FILTER = Image.NEAREST
#: The standard split (Ren et al. 2018): classes per split and images in all.
CLASSES = {"train": 351, "val": 97, "test": 160}
IMAGES = 779165
#: Image file endings `TieredFolders` reads (case-sensitive, as listed).
SUFFIXES = (".png", ".jpg", ".jpeg", ".JPEG", ".PNG")
_DECODER = f"Pillow RGB; {IMAGE_SIZE}x{IMAGE_SIZE} NEAREST unless already that size"


def decode_image(source) -> np.ndarray:
    """One image as uint8 `[84, 84, 3]`.

    Args:
      source: a file path (str), or the encoded image as bytes or a uint8 array.
    """
    if isinstance(source, np.ndarray) and source.dtype != np.uint8:
        raise TypeError(f"encoded image array has dtype {source.dtype}, expected uint8")
    with Image.open(source if isinstance(source, str) else io.BytesIO(source)) as img:
        img = img.convert("RGB")
        if img.size != (IMAGE_SIZE, IMAGE_SIZE):
            img = img.resize((IMAGE_SIZE, IMAGE_SIZE), RESIZE_FILTER)
        return np.asarray(img, np.uint8)


def notes(scan: dict[str, dict[str, int]]) -> list[str]:
    """How a scanned directory (split -> class -> count) differs from the standard split."""
    lines = [f"split {split} has {len(counts)} classes; tieredImageNet has {CLASSES[split]}"
             for split, counts in scan.items()
             if split in CLASSES and len(counts) != CLASSES[split]]
    total = sum(sum(counts.values()) for counts in scan.values())
    if set(scan) == set(CLASSES) and total != IMAGES:
        lines.append(f"the splits hold {total} images; tieredImageNet has {IMAGES}")
    return lines


class _TieredForm(forms.Form):
    """What both tieredImageNet forms share (the pickles override reading)."""

    dataset = "tieredimagenet"
    decoder = _DECODER

    @property
    def image_shape(self) -> tuple[int, ...]:
        return IMAGE_SHAPE

    def notes(self, scan):
        return notes(scan)


class TieredPickles(_TieredForm):
    """`{split}_images_png.pkl` + `{split}_labels.pkl` (see the module docstring)."""

    description = "{train,val,test}_images_png.pkl + {train,val,test}_labels.pkl (Ren et al.)"

    @classmethod
    def detect(cls, data_dir: str) -> bool:
        return all(os.path.isfile(p) for s in forms.SPLITS for p in _pickle_paths(data_dir, s))

    def scan(self) -> dict[str, dict[str, int]]:
        scan = {}
        for split in forms.SPLITS:
            names, members = self._classes(split)
            scan[split] = {n: len(m) for n, m in zip(names, members)}
        return scan

    def read_split(self, split: str, on_skip: Callable[[str], None] | None = None,
                   allocate: forms.Allocate = np.zeros) -> ClassPool:
        names, members = self._classes(split)
        images_path = _pickle_paths(self.data_dir, split)[0]
        counts = np.array([len(m) for m in members], np.int32)
        encoded = _load_pickle(images_path)
        total = sum(len(m) for m in members)
        if len(encoded) != total:
            raise ValueError(f"{images_path!r} holds {len(encoded)} images but its labels file "
                             f"labels {total}")
        images = allocate((len(names), int(counts.max())) + IMAGE_SHAPE, np.uint8)
        # One thread: entries are ~10 KB PNGs that decode in about 0.5 ms, under
        # `class_pool.SERIAL_BELOW`, where `decode_classes` also stays on one.
        # Its failure descriptions open a file path, which an entry lacks, hence this loop.
        bad = []
        for c, indices in enumerate(members):
            kept = 0
            for i in indices:
                try:
                    images[c, kept] = decode_image(_as_buffer(encoded[i]))
                except Exception as err:  # noqa: BLE001 - any decoder failure is reported
                    bad.append((f"{images_path}[{i}]", f"{type(err).__name__}: {err}"))
                    continue
                kept += 1
            counts[c] = kept
        del encoded  # the train pickle is ~12 GB: free it before the caller goes on
        if bad and on_skip is None:
            raise BadImageError(bad)
        for path, reason in bad:
            on_skip(f"skipped unreadable image {path!r}: {reason}")
        return ClassPool(images, counts, tuple(names))

    def sources(self) -> list[str]:
        return [p for s in forms.SPLITS for p in _pickle_paths(self.data_dir, s)]

    def _classes(self, split: str) -> tuple[list[str], list[np.ndarray]]:
        """Class names, sorted, and each class's image indices in file order."""
        forms.check_split(split)
        path = _pickle_paths(self.data_dir, split)[1]
        labels = _load_pickle(path)
        if not isinstance(labels, dict):
            raise ValueError(f"{path!r} holds a {type(labels).__name__}, expected a dict with "
                             "'label_specific' and 'label_specific_str'")
        strs = [_text(s) for s in _entry(labels, "label_specific_str", path)]
        specific = np.asarray(_entry(labels, "label_specific", path)).ravel()
        if specific.dtype.kind not in "iu":
            raise ValueError(f"{path!r}: label_specific has dtype {specific.dtype}, expected ints")
        outside = specific[(specific < 0) | (specific >= len(strs))]
        if outside.size:
            raise ValueError(f"{path!r}: label_specific holds {outside[0]}, outside the "
                             f"{len(strs)} names of label_specific_str")
        if not specific.size:
            raise ValueError(f"{path!r} labels no images")
        per_label = np.bincount(specific, minlength=len(strs))
        groups = np.split(np.argsort(specific, kind="stable"), np.cumsum(per_label)[:-1])
        present = [k for k in range(len(strs)) if per_label[k]]
        names = _unique([strs[k] for k in present], present)
        order = sorted(range(len(present)), key=names.__getitem__)
        return [names[j] for j in order], [groups[present[j]] for j in order]


class TieredFolders(_TieredForm, forms.FileForm):
    """`{train,val,test}/<class>/*.{png,jpg,jpeg,JPEG,PNG}` (see the module docstring)."""

    description = "{train,val,test}/<class>/*.png|jpg|jpeg (a tieredImageNet folder export)"

    @classmethod
    def detect(cls, data_dir: str) -> bool:
        split_dirs = [os.path.join(data_dir, s) for s in forms.SPLITS]
        return (all(os.path.isdir(d) for d in split_dirs)
                and any(_class_dirs(d) for d in split_dirs))

    def class_files(self, split):
        return {os.path.basename(c): _image_files(c) for c in self._classes(split)}

    def read_image(self, path):
        return decode_image(path)

    def read_split(self, split, on_skip=None, allocate=np.zeros):
        empty = [c for c in self._classes(split) if not _image_files(c)]
        if empty:
            raise ValueError(f"class folder {empty[0]!r} has no {'/'.join(SUFFIXES)} images")
        return super().read_split(split, on_skip, allocate)

    def _classes(self, split: str) -> list[str]:
        forms.check_split(split)
        split_dir = os.path.join(self.data_dir, split)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"tieredImageNet split folder {split_dir!r} does not exist")
        classes = _class_dirs(split_dir)
        if not classes:
            raise FileNotFoundError(f"no class folders in {split_dir!r}")
        return classes


#: The forms, in the order a registry tries them (as `miniimagenet.FORMS`).
FORMS = (TieredPickles, TieredFolders)


def _pickle_paths(data_dir: str, split: str) -> tuple[str, str]:
    return (os.path.join(data_dir, f"{split}_images_png.pkl"),
            os.path.join(data_dir, f"{split}_labels.pkl"))


def _load_pickle(path: str):
    if not os.path.isfile(path):
        nested = os.path.join(os.path.dirname(path), "tiered-imagenet")
        hint = (f"; the archive unpacks into {nested!r}: pass that folder"
                if os.path.isdir(nested) else "")
        raise FileNotFoundError(f"tieredImageNet file {path!r} does not exist{hint}")
    with open(path, "rb") as f:
        # "bytes": Python 2 strings stay bytes and numpy arrays load (numpy
        # supports "bytes" and "latin1" for Python 2 pickles; latin1 would turn
        # encoded images stored as Python 2 strings into str).
        return pickle.load(f, encoding="bytes")


def _entry(labels: dict, key: str, path: str):
    for k in (key, key.encode()):
        if k in labels:
            return labels[k]
    raise ValueError(f"{path!r} has no {key!r} entry; its keys: "
                     f"{sorted(_text(k) for k in labels)}")


def _text(value) -> str:
    """A class name as str: Python 2 strings arrive as bytes (most likely UTF-8)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin1")
    return str(value)


def _unique(names: list[str], labels: list[int]) -> list[str]:
    """`names`, with ` [label K]` added to each name that several classes share."""
    shared = {n for n in names if names.count(n) > 1}
    return [f"{n} [label {k}]" if n in shared else n for n, k in zip(names, labels)]


def _as_buffer(entry):
    """An images-pickle entry as something `io.BytesIO` takes."""
    if isinstance(entry, str):  # a Python 2 string that went through latin1
        return entry.encode("latin1")
    if isinstance(entry, np.ndarray):
        return np.ascontiguousarray(entry)
    return entry


def _class_dirs(split_dir: str) -> list[str]:
    """Sorted paths of the non-hidden sub-folders of `split_dir`."""
    return [os.path.join(split_dir, n) for n in sorted(os.listdir(split_dir))
            if not n.startswith(".") and os.path.isdir(os.path.join(split_dir, n))]


def _image_files(class_dir: str) -> list[str]:
    """Sorted image paths of one class folder; hidden files (macOS `._*` copies) left out."""
    return [os.path.join(class_dir, n) for n in sorted(os.listdir(class_dir))
            if n.endswith(SUFFIXES) and not n.startswith(".")]
