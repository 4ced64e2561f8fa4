"""The forms a split image dataset is held in on disk, behind one interface.

A split dataset (Mini-ImageNet, tieredImageNet, CIFAR-FS, FC100, a user's own
folders) is three splits, train, val and test, of named classes. Researchers
hold each in several forms: folders of files, CSV lists beside one image
folder, pickles of decoded arrays, pickles of encoded bytes. A `Form` reads one
of them into the same thing: per split, a `ClassPool` whose classes are sorted
by name. What a form must do is small:

  * `detect(data_dir)`: does the directory hold this form? (names only, fast)
  * `scan()`: split -> class -> image count, without decoding anything;
  * `read_split(split, ...)`: decode one split into a pool;
  * `sources()` and `decoder`: what a decoded store must be rebuilt after
    (`fingerprint`);
  * `notes(scan)`: how this copy differs from the dataset's standard version.

`data.registry` lists the forms of each dataset and picks one for a directory;
`data.store` writes any form into a memory-mapped file that later runs open
instead of decoding.
"""

import hashlib
import os
from typing import Callable

import numpy as np

from supervised_reptile.data.class_pool import ClassPool, decode_classes

SPLITS = ("train", "val", "test")

#: `read_split`'s allocator: `(shape, dtype) -> array` to decode into (the
#: store passes a memory-mapped file, so a split larger than memory decodes).
Allocate = Callable[[tuple, type], np.ndarray]


class Form:
    """One on-disk form of a split image dataset (see the module docstring).

    Class attributes a form sets:
      dataset: the dataset family it belongs to ("miniimagenet", ...).
      description: the layout in a few words, as `check_data` prints it.
      decoder: how files become pixels (size, resize filter, colour mode):
        part of the fingerprint, so changing it rebuilds stores.
      splits: the splits it holds (Omniglot's folder: one, split per run).
    """

    dataset = ""
    description = ""
    decoder = ""
    splits: tuple[str, ...] = SPLITS

    def __init__(self, data_dir: str):
        self.data_dir = data_dir

    @classmethod
    def detect(cls, data_dir: str) -> bool:
        """Whether `data_dir` holds this form (looks at names only)."""
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The decoded shape of one image, e.g. `(84, 84, 3)`."""
        raise NotImplementedError

    def scan(self) -> dict[str, dict[str, int]]:
        """Split -> class name -> number of images, without decoding."""
        raise NotImplementedError

    def read_split(self, split: str, on_skip: Callable[[str], None] | None = None,
                   allocate: Allocate = np.zeros) -> ClassPool:
        """Decodes one split into a pool, classes sorted by name.

        Args:
          split: one of `self.splits`.
          on_skip: None to raise `class_pool.BadImageError` on files that do
            not decode; else they are left out and each is named through it.
          allocate: makes the `[classes, max_count, *image_shape]` uint8 array
            that the images are decoded into.
        """
        raise NotImplementedError

    def sources(self) -> list[str]:
        """Every file the images are read from (their sizes and modification
        times make the fingerprint)."""
        raise NotImplementedError

    def notes(self, scan: dict[str, dict[str, int]]) -> list[str]:
        """Lines saying how a scanned copy differs from the dataset's standard
        version (class counts, images per class, classes in another split);
        none for datasets without one."""
        del scan
        return []

    def fingerprint(self) -> str:
        """A digest of the sources' relative paths, sizes and modification
        times, and of the decoder: a decoded store of another fingerprint is stale."""
        digest = hashlib.sha256(f"{type(self).__name__}|{self.decoder}".encode())
        root = os.path.abspath(self.data_dir)
        # Sources are joined onto data_dir: cutting that prefix off gives
        # `relpath`'s answer at a fraction of its cost (0.8 s of Omniglot's
        # 33,000 files), which matters once the store is what a run opens.
        prefix = os.path.join(self.data_dir, "")
        for path in sorted(self.sources()):
            stat = os.stat(path)
            rel = path[len(prefix):] if path.startswith(prefix) else ""
            if not rel or rel != os.path.normpath(rel):
                rel = os.path.relpath(os.path.abspath(path), root)
            digest.update(f"\n{rel}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return digest.hexdigest()

    def __repr__(self):
        return f"{type(self).__name__}({self.data_dir!r})"


class FileForm(Form):
    """A form that holds each image in its own file: a variant lists the files
    of a split's classes (`class_files`) and reads one (`read_image`);
    counting, decoding (`class_pool.decode_classes`) and the sources follow."""

    def class_files(self, split: str) -> dict[str, list[str]]:
        """Class name -> its image files, classes sorted by name."""
        raise NotImplementedError

    def read_image(self, path: str) -> np.ndarray:
        """One file as uint8 `image_shape`."""
        raise NotImplementedError

    def scan(self):
        return {split: {name: len(files) for name, files in self.class_files(split).items()}
                for split in self.splits}

    def read_split(self, split, on_skip=None, allocate=np.zeros):
        check_split(split, self.splits)
        files = self.class_files(split)
        if not files:
            raise FileNotFoundError(f"the {split} split of {self.data_dir!r} has no classes "
                                    f"({self.description})")
        return decode_classes(list(files.values()), self.read_image, self.image_shape,
                              list(files), on_skip=on_skip, allocate=allocate)

    def sources(self):
        return [path for split in self.splits for files in self.class_files(split).values()
                for path in files]


def pool_from_arrays(class_images: dict[str, np.ndarray], allocate: Allocate = np.zeros
                     ) -> ClassPool:
    """A pool from already decoded images: class name -> uint8 `[count, *shape]`.

    Classes are sorted by name; every class must hold at least one image.
    """
    names = sorted(class_images)
    if not names:
        raise ValueError("no classes to make a pool of")
    empty = [n for n in names if len(class_images[n]) == 0]
    if empty:
        raise ValueError(f"class {empty[0]!r} has no images")
    shape = tuple(class_images[names[0]].shape[1:])
    counts = np.array([len(class_images[n]) for n in names], np.int32)
    images = allocate((len(names), int(counts.max())) + shape, np.uint8)
    for c, name in enumerate(names):
        images[c, :counts[c]] = class_images[name]
    return ClassPool(images, counts, tuple(names))


def memmap_allocator(path: str) -> Allocate:
    """An `Allocate` that makes the array a new `.npy` file at `path`, memory-mapped."""
    def allocate(shape, dtype):
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    return allocate


def check_split(split: str, splits: tuple[str, ...] = SPLITS) -> None:
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; valid: {splits}")
