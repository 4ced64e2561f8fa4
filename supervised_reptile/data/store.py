"""A decoded-image store: a split dataset decoded once into memory-mapped files.

Decoding Mini-ImageNet's 60,000 JPEGs takes minutes and holds 1.3 GB; a store
holds the decoded pixels, so a later run opens a file instead, and its pages
are read (and shared between the runs and workers of one machine) only as
tasks touch them: tieredImageNet's 16.5 GB of pixels train on a machine with
less memory than that.

A store is a folder:
  index.json   {"format", "dataset", "form" (the source's description),
                "source" (its folder), "fingerprint" (`Form.fingerprint` of
                the source), "image_shape", "splits": {split: {"names",
                "counts"}}}
  <split>.npy  uint8 `[classes, max_count, *image_shape]` (NumPy's format,
               opened with `mmap_mode="r"`), classes padded with zeros.

It is written into a sibling folder `<store>.partial-<pid>-<n>` whose
`index.json` is written last, then renamed into place in one step: a killed
conversion leaves only a `.partial` folder, which nothing reads and the next
conversion removes. A store is itself a `Form`, so a store folder can be
passed wherever a dataset folder is expected.
"""

import glob
import hashlib
import itertools
import json
import mmap
import os
import shutil
import time
from typing import Callable

import numpy as np

from supervised_reptile.data import forms
from supervised_reptile.data.class_pool import ClassPool

FORMAT = 1
INDEX = "index.json"
#: The store's folder name inside a writable dataset folder.
BESIDE_DATA = ".decoded"
_counter = itertools.count()


class Store(forms.Form):
    """A decoded-image store opened for reading."""

    description = "a decoded-image store (index.json + <split>.npy)"
    decoder = "stored"

    def __init__(self, data_dir: str):
        super().__init__(data_dir)
        path = os.path.join(data_dir, INDEX)
        try:
            with open(path) as f:
                self.index = json.load(f)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path!r} is not a readable store index: {err}") from None
        if self.index.get("format") != FORMAT:
            raise ValueError(f"{path!r} has store format {self.index.get('format')!r}; this "
                             f"version reads format {FORMAT}: convert the dataset again")
        self.dataset = self.index["dataset"]

    @classmethod
    def detect(cls, data_dir):
        return os.path.isfile(os.path.join(data_dir, INDEX))

    @property
    def image_shape(self):
        return tuple(self.index["image_shape"])

    @property
    def source_fingerprint(self) -> str:
        return self.index["fingerprint"]

    def scan(self):
        return {split: dict(zip(entry["names"], entry["counts"]))
                for split, entry in self.index["splits"].items()}

    @property
    def splits(self):
        return tuple(self.index["splits"])

    def read_split(self, split, on_skip=None, allocate=np.zeros):
        del on_skip, allocate  # decoded already; the file is the array
        forms.check_split(split, self.splits)
        entry = self.index["splits"][split]
        images = np.load(os.path.join(self.data_dir, f"{split}.npy"), mmap_mode="r")
        # Tasks read scattered images of about 21 KB each: without this advice the
        # kernel reads around every page fault (8 MB on the machine this was
        # measured on), which read 9 GB of a tieredImageNet store in 50 meta-iterations.
        advise = getattr(getattr(images, "_mmap", None), "madvise", None)
        if advise is not None and hasattr(mmap, "MADV_RANDOM"):
            advise(mmap.MADV_RANDOM)
        expected = (len(entry["names"]), max(entry["counts"])) + self.image_shape
        if images.shape != expected or images.dtype != np.uint8:
            raise ValueError(f"store {self.data_dir!r}: {split}.npy is {images.dtype} "
                             f"{images.shape}, its index says uint8 {expected}; convert the "
                             "dataset again")
        return ClassPool(images, np.array(entry["counts"], np.int32), tuple(entry["names"]))

    def sources(self):
        return [os.path.join(self.data_dir, n) for n in [INDEX] + [f"{s}.npy" for s in
                                                                   self.index["splits"]]]


def default_location(form: forms.Form) -> str:
    """Where a form's store goes by default: `<data_dir>/.decoded` if the data
    folder is writable, else a folder under the user's cache
    (`$XDG_CACHE_HOME` or `~/.cache`) named after the data folder."""
    if os.access(form.data_dir, os.W_OK):
        return os.path.join(form.data_dir, BESIDE_DATA)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    tag = hashlib.sha256(os.path.abspath(form.data_dir).encode()).hexdigest()[:16]
    return os.path.join(cache, "supervised_reptile", "decoded", f"{form.dataset}-{tag}")


def open_if_current(path: str, form: forms.Form, fingerprint: str | None = None
                    ) -> Store | None:
    """The store at `path` if it was decoded from `form` as it is now, else None.

    `fingerprint`: `form.fingerprint()` if the caller has it already (it stats
    every source file)."""
    return _current(path, form.dataset, fingerprint or form.fingerprint())


def _current(path: str, dataset: str, fingerprint: str) -> Store | None:
    """The store at `path` if it is one of `dataset` with that source fingerprint."""
    if not Store.detect(path):
        return None
    try:
        store = Store(path)
    except ValueError:
        return None
    current = store.dataset == dataset and store.source_fingerprint == fingerprint
    return store if current else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_abandoned(path: str) -> None:
    """Removes `.partial` folders of conversions whose process is gone."""
    for partial in glob.glob(glob.escape(path) + ".partial-*"):
        try:
            pid = int(partial.rsplit(".partial-", 1)[1].split("-")[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(partial, ignore_errors=True)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(form: forms.Form, path: str, on_skip: Callable[[str], None] | None = None,
          log_fn: Callable[[str], None] = print, fingerprint: str | None = None) -> Store:
    """Decodes every split of `form` into a store at `path` (atomically).

    An existing store at `path` is replaced once the new one is complete; if
    another process finished the same store meanwhile, that one is kept.

    Raises:
      class_pool.BadImageError: (with `on_skip=None`) images that do not decode.
      OSError: the folder cannot be written (nothing is left behind).
    """
    path = os.path.normpath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    _remove_abandoned(path)
    partial = f"{path}.partial-{os.getpid()}-{next(_counter)}"
    # Taken before decoding: a change meanwhile makes the store stale.
    fingerprint = fingerprint or form.fingerprint()
    began = time.perf_counter()
    skipped: list[str] = []
    try:
        os.makedirs(partial)
        splits = {}
        for split in form.splits:
            target = os.path.join(partial, f"{split}.npy")
            pool = form.read_split(split, skipped.append if on_skip else None,
                                   forms.memmap_allocator(target))
            if isinstance(pool.images, np.memmap) and pool.images.filename == os.path.abspath(
                    target):
                pool.images.flush()
            else:  # a form that made its own array
                np.save(target, np.ascontiguousarray(pool.images))
            splits[split] = {"names": list(pool.names), "counts": [int(c) for c in pool.counts]}
            del pool  # unmaps the file
            _fsync(target)
        index = {"format": FORMAT, "dataset": form.dataset, "form": form.description,
                 "source": os.path.abspath(form.data_dir), "fingerprint": fingerprint,
                 "image_shape": list(form.image_shape), "splits": splits,
                 "skipped": skipped}
        with open(os.path.join(partial, INDEX), "w") as f:
            json.dump(index, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _install(partial, path, form.dataset, fingerprint)
        for line in skipped:
            on_skip(line)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log_fn(f"Decoded {form.description} in {form.data_dir} into the store {path} "
           f"({time.perf_counter() - began:.0f} s); later runs open it instead of decoding")
    return Store(path)


def _install(partial: str, path: str, dataset: str, fingerprint: str) -> None:
    """Renames the finished `partial` to `path`, replacing a stale store."""
    if os.path.exists(path):
        if _current(path, dataset, fingerprint):  # another process finished it first
            shutil.rmtree(partial, ignore_errors=True)
            return
        old = f"{path}.old-{os.getpid()}-{next(_counter)}"
        os.rename(path, old)
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(partial, path)
    except OSError:
        if not _current(path, dataset, fingerprint):
            raise
        shutil.rmtree(partial, ignore_errors=True)
    _fsync(os.path.dirname(os.path.abspath(path)))


def ensure(form: forms.Form, path: str | None = None,
           on_skip: Callable[[str], None] | None = None,
           log_fn: Callable[[str], None] = print) -> Store:
    """The current store of `form` at `path` (default: `default_location`),
    written first if it is missing or stale."""
    if isinstance(form, Store):
        return form
    path = path or default_location(form)
    fingerprint = form.fingerprint()
    store = open_if_current(path, form, fingerprint)
    if store is not None:
        skipped = store.index.get("skipped", [])
        if skipped and on_skip is None:
            first = skipped[0].removeprefix("skipped unreadable image ")
            raise ValueError(f"the store {path} left out {len(skipped)} unreadable image(s) "
                             f"(the first: {first}); pass `skip_bad_images` to train without "
                             "them, or fix the files (the store is then decoded again)")
        for line in skipped:
            on_skip(line)
        return store
    if Store.detect(path):
        log_fn(f"The store {path} was decoded from another version of {form.data_dir}: "
               "decoding again")
    return write(form, path, on_skip, log_fn, fingerprint)
