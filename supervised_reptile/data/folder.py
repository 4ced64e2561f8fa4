"""A user's own image folders: `<dir>/{train,val,test}/<class>/*` -> class pools.

Any class names, any image sizes, any common format and colour mode: JPEG,
PNG, BMP, GIF, WebP, TIFF; greyscale, palette, CMYK, with or without alpha
(transparent pixels are laid on white). File extensions are matched whatever
their case; other files (`.DS_Store`, notes) are ignored. Every image is
converted to `channels` (1: greyscale, 3: RGB) and resized to `size x size`
(bilinear; an image of that size is left as it is).

Unset sizes are inferred from the first training image (`infer_shape`).
"""

import os

import numpy as np
from PIL import Image

from supervised_reptile.data import forms

#: File extensions read as images (compared lower-cased).
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
              ".pgm")
#: The largest inferred image side: the Mini-ImageNet network's input.
MAX_INFERRED_SIZE = 84
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def list_images(class_dir: str) -> list[str]:
    """Sorted image files of a class folder (extension case ignored, hidden files skipped)."""
    return [os.path.join(class_dir, n) for n in sorted(os.listdir(class_dir))
            if n.lower().endswith(EXTENSIONS) and not n.startswith(".")
            and os.path.isfile(os.path.join(class_dir, n))]


def list_classes(split_dir: str) -> list[str]:
    """Sorted class folders of a split (hidden folders skipped)."""
    return [n for n in sorted(os.listdir(split_dir))
            if not n.startswith(".") and os.path.isdir(os.path.join(split_dir, n))]


def to_array(img: Image.Image, size: int, channels: int) -> np.ndarray:
    """A Pillow image as uint8 `[size, size, channels]`."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA"))
    if img.mode in ("I", "I;16", "F"):  # 16-bit or float greyscale: scale to 8 bits
        values = np.asarray(img, np.float64)
        top = values.max() or 1.0
        img = Image.fromarray((values * (255.0 / top)).astype(np.uint8))
    img = img.convert("L" if channels == 1 else "RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    pixels = np.asarray(img, np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def read_image(path: str, size: int, channels: int) -> np.ndarray:
    """One file as uint8 `[size, size, channels]`."""
    with Image.open(path) as img:
        img.load()
        return to_array(img, size, channels)


def infer_shape(path: str) -> tuple[int, int]:
    """`(size, channels)` from one image: its side if it is square and at most
    `MAX_INFERRED_SIZE`, else `MAX_INFERRED_SIZE`; 1 channel for greyscale
    modes, else 3."""
    with Image.open(path) as img:
        width, height = img.size
        channels = 1 if img.mode in _GREY_MODES else 3
    size = width if width == height and width <= MAX_INFERRED_SIZE else MAX_INFERRED_SIZE
    return size, channels


class ImageFolders(forms.FileForm):
    """`{train,val,test}/<class>/<image files>`.

    Args:
      data_dir: the folder holding train/, val/ and test/.
      image_size: side of the square the images are resized to (0: inferred).
      channels: 1 or 3 (0: inferred).
    """

    dataset = "folder"
    description = "image folders, {train,val,test}/<class>/*"

    def __init__(self, data_dir: str, image_size: int = 0, channels: int = 0):
        super().__init__(data_dir)
        if channels not in (0, 1, 3):
            raise ValueError(f"channels {channels} is not supported; valid: 1 (greyscale), "
                             "3 (RGB), 0 (inferred from the images)")
        if image_size < 0:
            raise ValueError(f"image size {image_size} must be > 0 (or 0: inferred)")
        if not (image_size and channels):
            first = self._first_image()
            size, mode = infer_shape(first)
            image_size, channels = image_size or size, channels or mode
        self.image_size, self.channels = image_size, channels
        self.decoder = f"{image_size}x{image_size}x{channels} bilinear, alpha on white"

    @classmethod
    def detect(cls, data_dir):
        return all(os.path.isdir(os.path.join(data_dir, s)) for s in forms.SPLITS)

    @property
    def image_shape(self):
        return (self.image_size, self.image_size, self.channels)

    def _first_image(self) -> str:
        split_dir = os.path.join(self.data_dir, "train")
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"{self.data_dir!r} has no train/ folder (expected "
                                    "train/, val/ and test/, each with one folder per class)")
        for name in list_classes(split_dir):
            files = list_images(os.path.join(split_dir, name))
            if files:
                return files[0]
        raise FileNotFoundError(f"no images in the class folders of {split_dir!r} (looked "
                                f"for {', '.join(EXTENSIONS)})")

    def class_files(self, split):
        split_dir = os.path.join(self.data_dir, split)
        if not os.path.isdir(split_dir):
            raise FileNotFoundError(f"{self.data_dir!r} has no {split}/ folder (expected "
                                    "train/, val/ and test/, each with one folder per class)")
        return {n: list_images(os.path.join(split_dir, n)) for n in list_classes(split_dir)}

    def read_image(self, path):
        return read_image(path, self.image_size, self.channels)

    def read_split(self, split, on_skip=None, allocate=np.zeros):
        forms.check_split(split)
        empty = [n for n, f in self.class_files(split).items() if not f]
        if empty:
            raise FileNotFoundError(f"class folder {os.path.join(self.data_dir, split, empty[0])!r} "
                                    f"has no images (looked for {', '.join(EXTENSIONS)})")
        return super().read_split(split, on_skip, allocate)
