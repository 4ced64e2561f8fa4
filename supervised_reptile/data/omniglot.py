"""Omniglot: `<data_dir>/<alphabet>/<characterNN>/*.png` -> class pools (no TensorFlow).

Reproduces `supervised_reptile/omniglot.py` of the original: sorted listing,
a split by `random.shuffle` seeded with the run's seed, 28x28 nearest-neighbour
pixels with background 1 and strokes 0 (no inversion), and the training
characters rotated by 90/180/270 degrees as extra classes.

The folder is a `forms.Form` of one split, every character unrotated
(`Characters`), so a decoded store (`data.store`) holds it as it holds the
split datasets; each run splits and rotates that pool by its own seed
(`split_pool`). Decoding the 32,460 drawings takes seconds at every start;
opening the store, a fraction of one.
"""

import os
import random
from typing import Sequence

import numpy as np
from PIL import Image

from supervised_reptile.data import forms
from supervised_reptile.data.class_pool import ClassPool, decode_classes, list_images

IMAGE_SIZE = 28
ROTATIONS = (0, 90, 180, 270)


def list_characters(data_dir: str) -> list[str]:
    """Character directories in the original's order: sorted alphabets, then
    sorted entries starting with `character`."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"Omniglot directory {data_dir!r} does not exist; "
                                "run ./fetch_data.sh or pass `data_dir`")
    chars = []
    for alphabet in sorted(os.listdir(data_dir)):
        alpha_dir = os.path.join(data_dir, alphabet)
        if not os.path.isdir(alpha_dir):
            continue
        chars += [os.path.join(alpha_dir, c) for c in sorted(os.listdir(alpha_dir))
                  if c.startswith("character")]
    if not chars:
        raise FileNotFoundError(f"no <alphabet>/character*/ directories in {data_dir!r}; "
                                "run ./fetch_data.sh or pass `data_dir`")
    return chars


def split_characters(chars: Sequence, num_train: int, seed: int) -> tuple[list, list]:
    """The original's split: shuffle with Python's Mersenne Twister seeded by
    `seed` (its first use in the original), first `num_train` train, rest test.

    A local `random.Random` reproduces the original's split bit for bit
    without touching global state. The permutation depends only on
    `len(chars)`, so splitting indices splits the characters they index.
    """
    if not 0 < num_train < len(chars):
        raise ValueError(f"num_train {num_train} must be between 1 and "
                         f"{len(chars) - 1} ({len(chars)} characters found)")
    shuffled = list(chars)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:num_train], shuffled[num_train:]


def read_image(path: str) -> np.ndarray:
    """One drawing as uint8 `[28, 28]`: 255 background, 0 strokes.

    Pillow resizes mode-"1" images with nearest neighbour whatever filter is
    asked for; naming NEAREST makes that explicit for other modes too.
    """
    with Image.open(path) as img:
        small = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST)
        if small.mode == "1":  # bool pixels: True (white) becomes 1.0 as in the original
            return np.asarray(small).astype(np.uint8) * 255
        return np.asarray(small.convert("L"), np.uint8)


def rotated(pool: ClassPool, rotations=(0,)) -> ClassPool:
    """Each rotation of each class as its own class, ordered class-major:
    `(char0, rot0), (char0, rot90), ...`, named `<name>@<degrees>`.

    Rotation is counter-clockwise, equal to Pillow's `rotate(angle)` on these
    square images.
    """
    if tuple(rotations) == (0,):
        return pool
    images = np.stack([np.rot90(pool.images, k=r // 90, axes=(2, 3)) for r in rotations], axis=1)
    images = images.reshape((-1,) + pool.images.shape[1:])
    counts = np.repeat(pool.counts, len(rotations))
    names = tuple(f"{c}@{r}" for c in pool.names for r in rotations)
    return ClassPool(np.ascontiguousarray(images), counts, names)


def load_pool(chars: list[str], rotations=(0,), on_skip=None) -> ClassPool:
    """Decodes characters into a pool; each rotation of a character is its own
    class (`rotated`). `on_skip`: see `class_pool.decode_classes`."""
    return rotated(decode_classes([list_images(c, ".png") for c in chars], read_image,
                                  (IMAGE_SIZE, IMAGE_SIZE), chars, on_skip=on_skip), rotations)


#: The one split of an Omniglot folder: every character (`Characters`).
ALL = "all"


class Characters(forms.FileForm):
    """An Omniglot folder as a form of one split, `ALL`: every character,
    unrotated, in the original's order, named `<alphabet>/<characterNN>`."""

    dataset = "omniglot"
    description = "Omniglot's <alphabet>/<characterNN>/*.png folders"
    decoder = f"{IMAGE_SIZE}x{IMAGE_SIZE} nearest, 255 background"
    splits = (ALL,)
    image_shape = (IMAGE_SIZE, IMAGE_SIZE)

    @classmethod
    def detect(cls, data_dir):
        try:
            return bool(list_characters(data_dir))
        except FileNotFoundError:
            return False

    def class_files(self, split):
        forms.check_split(split, self.splits)
        return {os.path.relpath(c, self.data_dir): list_images(c, ".png")
                for c in list_characters(self.data_dir)}

    def read_image(self, path):
        return read_image(path)


def split_pool(pool: ClassPool, data_dir: str, num_train: int = 1200, seed: int = 0
               ) -> tuple[ClassPool, ClassPool]:
    """Train (augmented with rotations) and test pools, as the original builds
    them, from a pool of every character (`Characters.read_split(ALL)`, or a
    store of it).

    Each pool is trimmed to its own largest class, as if decoded alone: task
    sampling draws noise over that width, so the tasks are the ones drawn
    from a pool decoded per split. Classes are named by their folder
    (`data_dir/<alphabet>/<characterNN>`).
    """
    train, test = split_characters(range(pool.num_classes), num_train, seed)

    def subset(rows):
        counts = pool.counts[rows]
        images = np.asarray(pool.images[rows])[:, :int(counts.max())]
        names = tuple(os.path.join(data_dir, pool.names[r]) for r in rows)
        return ClassPool(np.ascontiguousarray(images), counts, names)

    return rotated(subset(train), ROTATIONS), subset(test)


def load(data_dir: str, num_train: int = 1200, seed: int = 0,
         on_skip=None) -> tuple[ClassPool, ClassPool]:
    """Train (augmented with rotations) and test pools, decoded from the folder."""
    return split_pool(Characters(data_dir).read_split(ALL, on_skip), data_dir, num_train, seed)
