"""CIFAR-FS and FC100, both cut from CIFAR-100's python pickles -> class pools (no TensorFlow).

Both read `cifar-100-python/{train,test,meta}` as Krizhevsky distributes it
(Python 2 pickles: `train` and `test` hold `b"data"` uint8 `[N, 3072]` rows in
channel-major order, 1024 red then green then blue values, each 32x32
row-major, with `b"fine_labels"` and `b"coarse_labels"`; `meta` holds
`b"fine_label_names"` and `b"coarse_label_names"`). As the standard loaders do,
each class takes both its 500 training and its 100 test images (600); the
split is over classes only:

  * `CifarFS` (Bertinetto et al. 2019): the 100 fine classes, split 64/16/20
    at random by the authors' fixed lists;
  * `FC100` (Oreshkin et al. 2018, TADAM): the 20 superclasses split 12/4/4,
    each superclass's 5 fine classes going with it (60/20/20 classes), so that
    train and test share no superclass.

Pools are named by fine label, classes sorted by name; within a class the
training-set images come first, then the test-set ones, each in file order.
The pickles are unpickled: only open copies you trust.
"""

import os
import pickle

import numpy as np

from supervised_reptile.data import forms
from supervised_reptile.data.class_pool import ClassPool

FOLDER = "cifar-100-python"
FILES = ("train", "test", "meta")
IMAGE_SHAPE = (32, 32, 3)

# The class lists below are taken from torchmeta (github.com/tristandeleu/pytorch-meta),
# files torchmeta/datasets/assets/cifar100/cifar-fs/{train,val,test}.json (there as
# [superclass, class] pairs, from Bertinetto's r2d2 split files) and
# torchmeta/datasets/assets/cifar100/fc100/{train,val,test}.json. They agree with a
# second public loader's index lists for both datasets, and FC100's with TADAM's own
# split script (superclass indices train {1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19},
# val {8, 11, 13, 16}, test {0, 7, 12, 14} of the alphabetical superclass names).
# Sorted here by name.

#: CIFAR-FS: split -> CIFAR-100 fine label names (64/16/20).
CIFAR_FS_CLASSES: dict[str, tuple[str, ...]] = {
    "train": (
        "apple", "aquarium_fish", "bear", "bee", "bottle", "bowl", "boy", "bridge", "bus",
        "can", "castle", "caterpillar", "chair", "clock", "cloud", "cockroach", "couch",
        "cup", "dinosaur", "dolphin", "elephant", "forest", "girl", "hamster", "house",
        "kangaroo", "keyboard", "lawn_mower", "lion", "lizard", "lobster", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "palm_tree", "pear",
        "pine_tree", "plate", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
        "seal", "shrew", "skunk", "skyscraper", "snake", "spider", "squirrel", "streetcar",
        "sunflower", "tank", "tiger", "train", "trout", "tulip", "turtle", "willow_tree",
        "wolf"),
    "val": (
        "beaver", "beetle", "butterfly", "camel", "cattle", "crab", "crocodile", "flatfish",
        "lamp", "maple_tree", "motorcycle", "otter", "sea", "shark", "television",
        "tractor"),
    "test": (
        "baby", "bed", "bicycle", "chimpanzee", "fox", "leopard", "man", "pickup_truck",
        "plain", "poppy", "rocket", "rose", "snail", "sweet_pepper", "table", "telephone",
        "wardrobe", "whale", "woman", "worm"),
}

#: FC100: split -> CIFAR-100 coarse label (superclass) names (12/4/4).
FC100_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "train": (
        "fish", "flowers", "food_containers", "fruit_and_vegetables",
        "household_electrical_devices", "household_furniture",
        "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "reptiles",
        "trees", "vehicles_1", "vehicles_2"),
    "val": (
        "large_carnivores", "large_omnivores_and_herbivores", "non-insect_invertebrates",
        "small_mammals"),
    "test": ("aquatic_mammals", "insects", "medium_mammals", "people"),
}


def find_root(data_dir: str) -> str | None:
    """The folder holding the three pickles: `data_dir/cifar-100-python` or
    `data_dir` itself; None if neither does (looks at names only)."""
    for root in (os.path.join(data_dir, FOLDER), data_dir):
        if all(os.path.isfile(os.path.join(root, f)) for f in FILES):
            return root
    return None


def _unpickle(path: str) -> dict:
    with open(path, "rb") as f:
        try:
            data = pickle.load(f, encoding="bytes")  # written by Python 2
        except Exception as err:  # noqa: BLE001 - unpickling fails in many ways
            raise ValueError(f"cannot read {path!r}: {type(err).__name__}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path!r} is not a CIFAR-100 pickle: expected a dict, got "
                         f"{type(data).__name__}")
    return data


def _field(data: dict, key: bytes, path: str):
    """`data[key]`, or `data[key.decode()]` in a copy re-pickled with str keys."""
    for k in (key, key.decode()):
        if k in data:
            return data[k]
    raise ValueError(f"{path!r} has no {key!r} entry (keys: {sorted(map(repr, data))}); is "
                     "it CIFAR-100's python version?")


def _names(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


class Cifar100Form(forms.Form):
    """CIFAR-100's python pickles, split over classes by `split_of` (see the
    module docstring); a variant overrides `split_of` and the class counts."""

    description = "CIFAR-100's python pickles, cifar-100-python/{train,test,meta}"
    decoder = "cifar100 python 32x32x3, channel-major rows -> HWC"
    #: split -> the number of classes of the standard split (`notes`).
    standard_classes: dict[str, int] = {}

    @classmethod
    def detect(cls, data_dir):
        return find_root(data_dir) is not None

    @property
    def image_shape(self):
        return IMAGE_SHAPE

    @property
    def root(self) -> str:
        """The `cifar-100-python` folder."""
        root = find_root(self.data_dir)
        if root is None:
            raise FileNotFoundError(f"no CIFAR-100 python pickles ({', '.join(FILES)}) in "
                                    f"{self.data_dir!r} or its {FOLDER}/ folder")
        return root

    def split_of(self, fine: str, coarse: str) -> str | None:
        """The split that fine class `fine` of superclass `coarse` belongs to
        (None: in no split)."""
        raise NotImplementedError

    def _load(self) -> tuple[dict, dict[str, dict]]:
        """The unpickled `meta`, and file ("train", "test") -> its unpickled dict."""
        return (_unpickle(os.path.join(self.root, "meta")),
                {f: _unpickle(os.path.join(self.root, f)) for f in ("train", "test")})

    def _classes(self, meta: dict, files: dict[str, dict]
                 ) -> dict[str, dict[str, list[tuple[str, np.ndarray]]]]:
        """Split -> class name (sorted) -> its (file, row indices), train before test."""
        meta_path = os.path.join(self.root, "meta")
        fine_names = _names(_field(meta, b"fine_label_names", meta_path))
        coarse_names = _names(_field(meta, b"coarse_label_names", meta_path))
        rows: dict[str, list[tuple[str, np.ndarray]]] = {}
        coarse_of: dict[str, str] = {}
        for file, data in files.items():
            path = os.path.join(self.root, file)
            fine = np.asarray(_field(data, b"fine_labels", path), np.int64)
            coarse = np.asarray(_field(data, b"coarse_labels", path), np.int64)
            if fine.shape != coarse.shape:
                raise ValueError(f"{path!r}: {fine.size} fine but {coarse.size} coarse labels")
            if fine.size and (min(fine.min(), coarse.min()) < 0 or fine.max() >= len(fine_names)
                              or coarse.max() >= len(coarse_names)):
                raise ValueError(f"{path!r}: labels outside the {len(fine_names)} fine and "
                                 f"{len(coarse_names)} coarse names of {meta_path!r}")
            for label in np.unique(fine):
                index = np.flatnonzero(fine == label)
                name = fine_names[label]
                supers = {coarse_names[c] for c in np.unique(coarse[index])} | (
                    {coarse_of[name]} if name in coarse_of else set())
                if len(supers) > 1:
                    raise ValueError(f"{path!r}: class {name!r} is labelled with several "
                                     f"superclasses: {sorted(supers)}")
                coarse_of[name] = supers.pop()
                rows.setdefault(name, []).append((file, index))
        classes = {s: {} for s in forms.SPLITS}
        for name in sorted(rows):
            split = self.split_of(name, coarse_of[name])
            if split is not None:
                classes[split][name] = rows[name]
        return classes

    def scan(self):
        return {split: {name: sum(len(i) for _, i in parts) for name, parts in classes.items()}
                for split, classes in self._classes(*self._load()).items()}

    def read_split(self, split, on_skip=None, allocate=np.zeros) -> ClassPool:
        del on_skip  # pixels are stored decoded: nothing can fail to decode
        forms.check_split(split)
        meta, files = self._load()
        classes = self._classes(meta, files)[split]
        if not classes:
            raise ValueError(f"{self.dataset} split {split!r} has no classes in {self.root!r}")
        counts = np.array([sum(len(i) for _, i in parts) for parts in classes.values()],
                          np.int32)
        data = {}
        for file in files:
            path = os.path.join(self.root, file)
            data[file] = np.asarray(_field(files[file], b"data", path))
            labels = len(_field(files[file], b"fine_labels", path))
            if data[file].dtype != np.uint8 or data[file].shape != (labels, 3 * 32 * 32):
                raise ValueError(f"{path!r}: data is {data[file].dtype} {data[file].shape}; "
                                 f"expected uint8 [{labels}, 3072] (a row per label)")
        images = allocate((len(classes), int(counts.max())) + IMAGE_SHAPE, np.uint8)
        for c, parts in enumerate(classes.values()):
            start = 0
            for file, index in parts:
                # [n, 3072] channel-major rows -> [n, 3, 32, 32] -> [n, 32, 32, 3]
                images[c, start:start + len(index)] = (
                    data[file][index].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                start += len(index)
        return ClassPool(images, counts, tuple(classes))

    def sources(self):
        return [os.path.join(self.root, f) for f in FILES]

    def notes(self, scan: dict[str, dict[str, int]]) -> list[str]:
        """Lines naming each split whose class count is not the standard one."""
        return [f"{self.dataset} split {split} has {len(scan.get(split, {}))} classes; the "
                f"standard split has {n}" for split, n in self.standard_classes.items()
                if len(scan.get(split, {})) != n]


class CifarFS(Cifar100Form):
    """CIFAR-FS: fine classes split by `CIFAR_FS_CLASSES` (64/16/20)."""

    dataset = "cifar-fs"
    standard_classes = {s: len(c) for s, c in CIFAR_FS_CLASSES.items()}
    _split = {name: split for split, names in CIFAR_FS_CLASSES.items() for name in names}

    def split_of(self, fine, coarse):
        return self._split.get(fine)


class FC100(Cifar100Form):
    """FC100: fine classes split with their superclass by `FC100_SUPERCLASSES`
    (12/4/4 superclasses, 60/20/20 classes)."""

    dataset = "fc100"
    standard_classes = {s: 5 * len(c) for s, c in FC100_SUPERCLASSES.items()}
    _split = {name: split for split, names in FC100_SUPERCLASSES.items() for name in names}

    def split_of(self, fine, coarse):
        return self._split.get(coarse)


#: Every form of this module.
FORMS = (CifarFS, FC100)
