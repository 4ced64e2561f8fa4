"""The split image datasets, the forms each is read from, and which form a folder holds.

`find` is the one place that turns `(data_dir, dataset)` into a `forms.Form`:
training, `check_data`, the converter and the benchmarks all go through it, so
a folder means the same thing everywhere. A decoded store (`store.Store`) is a
form of every dataset.
"""

import os
from typing import Callable

import numpy as np

from supervised_reptile.data import (cifar, folder, forms, miniimagenet, omniglot, store,
                                     tieredimagenet)

#: Dataset -> the forms it is read from, in the order they are tried.
FORMS: dict[str, tuple[type[forms.Form], ...]] = {
    "miniimagenet": miniimagenet.FORMS,
    "tieredimagenet": tieredimagenet.FORMS,
    "cifar-fs": (cifar.CifarFS,),
    "fc100": (cifar.FC100,),
    "folder": (folder.ImageFolders,),
}
#: Forms that are plain split folders, told apart only by their class names.
_SPLIT_FOLDERS = (miniimagenet.OriginalLayout, tieredimagenet.TieredFolders,
                  folder.ImageFolders)
#: Dataset -> the image shape its network takes ("folder": from the configuration).
IMAGE_SHAPES = {"miniimagenet": miniimagenet.IMAGE_SHAPE,
                "tieredimagenet": tieredimagenet.IMAGE_SHAPE,
                "cifar-fs": cifar.IMAGE_SHAPE, "fc100": cifar.IMAGE_SHAPE}
#: Dataset -> the line that says how to get it.
GET_IT = {
    "omniglot": "download it with `./fetch_data.sh omniglot` or pass `data_dir`",
    "miniimagenet": "download it with `./fetch_data.sh miniimagenet`, or pass `data_dir` "
                    "pointing to a copy in any of these forms",
    "tieredimagenet": "pass `data_dir` holding Ren et al.'s pickles "
                      "({train,val,test}_images_png.pkl and _labels.pkl) or "
                      "{train,val,test}/<wnid>/ folders",
    "cifar-fs": "pass `data_dir` holding CIFAR-100's python version (cifar-100-python/ "
                "with train, test and meta)",
    "fc100": "pass `data_dir` holding CIFAR-100's python version (cifar-100-python/ "
             "with train, test and meta)",
    "folder": "pass `data_dir` holding train/, val/ and test/ with one folder of images "
              "per class",
}


def split_datasets() -> tuple[str, ...]:
    """The datasets with train, val and test splits of named classes."""
    return tuple(FORMS)


def find(data_dir: str, dataset: str, image_size: int = 0, channels: int = 0) -> forms.Form:
    """The form of `dataset` that `data_dir` holds.

    Args:
      data_dir: the dataset folder (or a decoded store of it).
      dataset: one of `split_datasets()`, or "omniglot" (`omniglot.Characters`,
        one split of every character).
      image_size, channels: "folder" only (0: inferred from the images).

    Raises:
      FileNotFoundError: no folder, or none of the dataset's forms in it.
      ValueError: an unknown dataset, or a store of another dataset.
    """
    if dataset not in FORMS and dataset != "omniglot":
        raise ValueError(f"unknown dataset {dataset!r}; valid: omniglot, {', '.join(FORMS)}")
    if not os.path.isdir(data_dir):
        what = "is not a directory" if os.path.exists(data_dir) else "does not exist"
        raise FileNotFoundError(f"data directory {data_dir!r} {what}; {GET_IT[dataset]}")
    if store.Store.detect(data_dir):
        found = store.Store(data_dir)
        if found.dataset != dataset:
            raise ValueError(f"{data_dir!r} is a decoded store of {found.dataset}, not of "
                             f"{dataset}")
        return found
    if dataset == "omniglot":  # its own listing says what is missing
        return omniglot.Characters(data_dir)
    for form in FORMS[dataset]:
        if form.detect(data_dir):
            if form is folder.ImageFolders:
                return form(data_dir, image_size, channels)
            return form(data_dir)
    present = [s for s in forms.SPLITS if os.path.isdir(os.path.join(data_dir, s))]
    if present and len(present) < len(forms.SPLITS):
        missing = ", ".join(s + "/" for s in forms.SPLITS if s not in present)
        raise FileNotFoundError(f"{data_dir!r} has no {missing} (expected train/, val/ and "
                                f"test/): a half-finished download? Remove it, then "
                                f"{GET_IT[dataset]}")
    known = "; ".join(f.description for f in FORMS[dataset])
    raise FileNotFoundError(f"{data_dir!r} holds no {dataset} in a form this project reads "
                            f"({known}); {GET_IT[dataset]}")


def guess(data_dir: str) -> str:
    """The dataset a folder most likely holds ("omniglot" when nothing else fits).

    Forms with their own file names (pickles, CSV lists, a store) name their
    dataset; split folders of ImageNet wnids are Mini-ImageNet (tieredImageNet
    when the train split has more classes than Mini-ImageNet has in all),
    other split folders a user's own.
    """
    if store.Store.detect(data_dir):
        try:
            return store.Store(data_dir).dataset
        except ValueError:
            pass
    for dataset, dataset_forms in FORMS.items():
        for form in dataset_forms:
            if form.detect(data_dir) and form not in _SPLIT_FOLDERS:
                return dataset
    splits = [os.path.join(data_dir, s) for s in forms.SPLITS
              if os.path.isdir(os.path.join(data_dir, s))]
    if not splits:
        return "omniglot"
    classes = [n for n in os.listdir(splits[0]) if os.path.isdir(os.path.join(splits[0], n))]
    if classes and all(n[:1] == "n" and n[1:].isdigit() and len(n) == 9 for n in classes):
        return "tieredimagenet" if len(classes) > 100 and "tieredimagenet" in FORMS \
            else "miniimagenet"
    return "folder"


def image_reader(dataset: str, image_shape: tuple[int, ...]) -> Callable[[str], np.ndarray]:
    """Reads one image file as the dataset's training images were read (`predict`)."""
    if dataset == "omniglot":
        return omniglot.read_image
    if dataset == "miniimagenet" or (dataset in FORMS and dataset != "folder"
                                     and tuple(image_shape) == miniimagenet.IMAGE_SHAPE):
        return miniimagenet.read_image
    size, channels = image_shape[0], image_shape[-1]
    return lambda path: folder.read_image(path, size, channels)
