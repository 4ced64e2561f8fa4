"""Mini-ImageNet: `<data_dir>/{train,val,test}/<wnid>/*.JPEG` -> class pools (no TensorFlow).

As the original: full-size JPEGs squashed to 84x84 with nearest neighbour (the
Pillow 4 default the original ran with; modern Pillow would use bicubic), the
resize done before the RGB conversion, values later scaled to [0, 1]. Classes
are sorted by name (the original used the unsorted `os.listdir` order, which
made task sequences machine-dependent).
"""

import os

import numpy as np
from PIL import Image

from supervised_reptile.data.class_pool import ClassPool, decode_classes, list_images

IMAGE_SIZE = 84
SPLITS = ("train", "val", "test")
RESIZE_FILTER = Image.NEAREST


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


def load_split(split_dir: str, on_skip=None) -> ClassPool:
    """Decodes one split into a pool (`on_skip`: see `class_pool.decode_classes`)."""
    classes = list_classes(split_dir)
    if not classes:
        raise FileNotFoundError(f"no n*/ class directories in {split_dir!r}")
    return decode_classes([list_images(c, ".JPEG") for c in classes], read_image,
                          (IMAGE_SIZE, IMAGE_SIZE, 3), classes, on_skip=on_skip)


def load(data_dir: str) -> tuple[ClassPool, ClassPool, ClassPool]:
    """The train, val and test pools."""
    return tuple(load_split(os.path.join(data_dir, s)) for s in SPLITS)
