"""Few-shot prediction for people: a folder of examples per class in, a label per image out.

    `cli.predict_main`: a model folder, a support folder, a query folder

`SUPPORT/<class name>/*` holds the labelled examples (sorted class names
become labels 0..n-1, n <= the model's N; any number of images per class),
`QUERY/*` the images to classify. Images are read exactly as in training
(`omniglot.read_image`: any size, nearest-neighbour to 28x28, background 1;
`miniimagenet.read_image` for Mini-ImageNet models). Prints
`<query file>\t<class name>` per image, in sorted file order (with `--scores`,
then each class's probability as `name=p`).
"""

import json
import os
import numpy as np

from supervised_reptile import config as config_lib
from supervised_reptile.data import folder, registry
from supervised_reptile.data.class_pool import PIXEL_SCALE

IMAGE_SUFFIXES = folder.EXTENSIONS


def _images_in(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder!r} is not a folder")
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if n.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(folder, n))]


def read_support(folder: str, read_image) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`(images float32 [S, ...], labels int32 [S], class names)` from class sub-folders."""
    names = sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))) \
        if os.path.isdir(folder) else []
    if not names:
        raise FileNotFoundError(f"no class sub-folders in support folder {folder!r}")
    images, labels = [], []
    for label, name in enumerate(names):
        files = _images_in(os.path.join(folder, name))
        if not files:
            raise FileNotFoundError(f"class folder {os.path.join(folder, name)!r} has no images "
                                    f"(looked for {IMAGE_SUFFIXES})")
        images += [read_image(f) for f in files]
        labels += [label] * len(files)
    return _to_float(images), np.array(labels, np.int32), names


def _to_float(images) -> np.ndarray:
    return np.stack(images).astype(np.float32) / PIXEL_SCALE


def check_model_dir(model_dir: str) -> None:
    """Raises a one-line error unless `model_dir` is a model written by `--export`."""
    if os.path.isfile(os.path.join(model_dir, "saved_model.pb")) and os.path.isfile(
            os.path.join(model_dir, "supervised_reptile.json")):
        return
    if os.path.isfile(os.path.join(model_dir, config_lib.CONFIG_FILE)):
        target = os.path.normpath(model_dir) + "_export"
        raise ValueError(f"{model_dir!r} is a training checkpoint, not an exported model; "
                         f"export it first: python -m supervised_reptile.export --checkpoint "
                         f"{model_dir} --export {target}, then pass --model {target}")
    what = "does not exist" if not os.path.exists(model_dir) else \
        "is not a model written by --export (no saved_model.pb and supervised_reptile.json)"
    raise FileNotFoundError(f"--model {model_dir!r} {what}")


def predict(model_dir: str, support_dir: str, query_dir: str
            ) -> list[tuple[str, str, dict[str, float]]]:
    """`[(query file name, predicted class name, class name -> probability)]`
    in sorted file order; the probabilities are over the support set's classes."""
    check_model_dir(model_dir)
    with open(os.path.join(model_dir, "supervised_reptile.json")) as f:
        meta = json.load(f)
    # Models exported by earlier versions hold the flat configuration.
    dataset = config_lib.from_dict(meta["config"]).data.dataset
    read_image = registry.image_reader(dataset, meta["image_shape"])
    support, labels, names = read_support(support_dir, read_image)
    if len(names) > meta["num_classes"]:
        raise ValueError(f"{len(names)} classes in {support_dir!r}, but the model was trained "
                         f"for at most {meta['num_classes']}")
    queries = _images_in(query_dir)
    if not queries:
        raise FileNotFoundError(f"no images in query folder {query_dir!r}")
    import tensorflow as tf
    model = tf.saved_model.load(model_dir)
    out = model.signatures["adapt_and_predict"](
        support_images=tf.constant(support), support_labels=tf.constant(labels),
        query_images=tf.constant(_to_float([read_image(q) for q in queries])))
    # Only the support set's classes can be predicted: the scores are over those.
    probs = tf.nn.softmax(out["logits"][:, :len(names)]).numpy()
    return [(os.path.basename(q), names[int(np.argmax(p))], dict(zip(names, map(float, p))))
            for q, p in zip(queries, probs)]
