"""A pool of image classes held as one uint8 array: the unit every sampler draws from."""

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np

#: Pixels are stored as uint8 and become float32 `value / PIXEL_SCALE` in [0, 1].
PIXEL_SCALE = 255.0


@dataclasses.dataclass(frozen=True)
class ClassPool:
    """Decoded images of several classes, padded to a common count.

    Attributes:
      images: uint8 `[num_classes, max_count, *image_shape]`; class `c` owns
        `images[c, :counts[c]]`, the rest is zero padding.
      counts: int32 `[num_classes]`, images per class (>= 1).
      names: one human-readable name per class (a path, plus a rotation suffix
        for rotated Omniglot classes).
    """

    images: np.ndarray
    counts: np.ndarray
    names: tuple[str, ...]

    def __post_init__(self):
        if self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {self.images.dtype}")
        if len(self.names) != len(self.counts) or len(self.counts) != len(self.images):
            raise ValueError(f"{len(self.images)} image rows, {len(self.counts)} counts and "
                             f"{len(self.names)} names do not match")

    @property
    def num_classes(self) -> int:
        return len(self.counts)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[2:])

    @property
    def min_count(self) -> int:
        return int(self.counts.min()) if len(self.counts) else 0


def list_images(class_dir: str, suffix: str) -> list[str]:
    """Sorted paths of the files in `class_dir` ending in `suffix` (case-sensitive, as the original)."""
    return [os.path.join(class_dir, n) for n in sorted(os.listdir(class_dir)) if n.endswith(suffix)]


class BadImageError(ValueError):
    """Image files that could not be decoded; `bad` lists (path, reason) pairs."""

    def __init__(self, bad: Sequence[tuple[str, str]]):
        self.bad = list(bad)
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        path, reason = bad[0]
        super().__init__(f"cannot read image {path!r}: {reason}{more}; pass `skip_bad_images` "
                         "to go on without such files, or list them all with "
                         "`python -m supervised_reptile.check_data DATA_DIR`")


def describe_failure(path: str, err: Exception) -> str:
    """Why a file did not decode, in words (an HTML/text page is called one)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512).lstrip().lower()
    except OSError:
        head = b""
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")):
        return "it is an HTML/XML page, not an image (a failed download saved as an image?)"
    if not head:
        return "the file is empty (an interrupted download?)"
    return f"{type(err).__name__}: {err}"


#: Seconds per file under which decoding runs on one thread (`decode_classes`).
SERIAL_BELOW = 0.002
_PROBE = 32


def decode_classes(class_files: Sequence[Sequence[str]], decode: Callable[[str], np.ndarray],
                   image_shape: tuple[int, ...], names: Sequence[str],
                   workers: int | None = None,
                   on_skip: Callable[[str], None] | None = None,
                   allocate: Callable[[tuple, type], np.ndarray] = np.zeros) -> ClassPool:
    """Decodes every file once into a padded `ClassPool`.

    Args:
      class_files: for each class, the paths of its images.
      decode: maps a path to a uint8 array of shape `image_shape`.
      image_shape: the decoded shape.
      names: a name per class.
      workers: decoding threads (Pillow releases the GIL while decoding);
        None: one thread while the first files decode in under `SERIAL_BELOW`
        seconds each (small files: Pillow's per-file Python work holds the GIL,
        and threads fighting over it made 84x84 JPEGs decode 2x slower here),
        else `min(8, cores + 1)`.
      on_skip: None to raise `BadImageError` for files that do not decode;
        otherwise such files are left out of their class and `on_skip` is
        called with a line naming each.
      allocate: `(shape, dtype) -> zero-filled array` the images are decoded
        into (a memory-mapped file lets a split larger than memory decode).

    Raises:
      BadImageError: (with `on_skip=None`) listing every file that failed.
    """
    max_count = max((len(f) for f in class_files), default=0)
    images = allocate((len(class_files), max_count) + tuple(image_shape), np.uint8)
    jobs = [(c, i, path) for c, files in enumerate(class_files) for i, path in enumerate(files)]

    def _work(job):
        c, i, path = job
        try:
            images[c, i] = decode(path)
        except Exception as err:  # noqa: BLE001 - any decoder failure on any file is reported
            return c, i, path, describe_failure(path, err)
        return None

    bad, done = [], 0
    if workers is None:  # time a few files one by one
        began = time.perf_counter()
        while done < min(_PROBE, len(jobs)):
            bad.append(_work(jobs[done]))
            done += 1
        serial = (time.perf_counter() - began) < SERIAL_BELOW * max(done, 1)
        workers = 1 if serial else min(8, (os.cpu_count() or 1) + 1)
    if workers == 1:
        bad += [_work(job) for job in jobs[done:]]
    else:
        with ThreadPoolExecutor(workers) as pool:
            bad += list(pool.map(_work, jobs[done:]))
    bad = [b for b in bad if b is not None]
    counts = np.array([len(f) for f in class_files], np.int32)
    if bad and on_skip is None:
        raise BadImageError([(path, reason) for _, _, path, reason in bad])
    for c in sorted({b[0] for b in bad}):
        skipped = {i for bc, i, _, _ in bad if bc == c}
        keep = [i for i in range(counts[c]) if i not in skipped]
        images[c, :len(keep)] = images[c, keep]
        images[c, len(keep):] = 0
        counts[c] = len(keep)
    for _, _, path, reason in bad:
        on_skip(f"skipped unreadable image {path!r}: {reason}")
    return ClassPool(images, counts, tuple(names))
