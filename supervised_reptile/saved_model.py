"""SavedModel export of a meta-trained model, servable from plain TensorFlow.

The SavedModel needs no Python code of this package to load or run:

    m = tf.saved_model.load(DIR)
    m.signatures["serve"](images=x)["logits"]                       # [B, N]
    m.signatures["adapt_and_predict"](support_images=xs, support_labels=ys,
                                      query_images=xq)["logits"]      # [Q, n]

Signatures (images float32 `[batch, *image_shape]` with the training value
convention: Omniglot 28x28, background 1.0 and strokes 0.0; Mini-ImageNet
84x84x3 in [0, 1]):
  serve(images): logits `[B, N]` of the meta-initialization. Batch norm uses
    the batch's own statistics, as everywhere in this model family.
  adapt_and_predict(support_images, support_labels, query_images): the
    configured evaluation inner loop run in the graph (`eval_iters` steps
    of `eval_batch`, the inner optimizer with its state as trained, weight
    decay), then the queries predicted transductively or each with the whole
    support set, as configured. Labels are 0..n-1 for any n <= N; any number
    of shots and queries. Returns `logits` `[Q, n]` and `predictions` `[Q]`.
    Its mini-batch order is drawn with a stateless RNG from a key fixed at
    export (`[seed, EXPORT_STREAM]`): the same inputs give the same outputs.
  adapt_and_predict_with_batches(..., batches): the same with an explicit
    int32 `[steps, batch]` index order into the support set (to reproduce an
    evaluation exactly, or to bring your own randomness).

`supervised_reptile.json` next to the SavedModel records the run's
configuration, the image shape and the value convention (used by `predict`).

The export command (`cli.export_main`) writes one from a run's checkpoint folder.
"""

import dataclasses
import json
import os

import tensorflow as tf

from supervised_reptile import config as config_lib
from supervised_reptile.config import Config
from supervised_reptile.episodes import mini_batches

#: Stream id of the exported adapt_and_predict's mini-batch key.
EXPORT_STREAM = 100
METADATA_FILE = "supervised_reptile.json"


def build_module(algorithm, config: Config) -> tuple[tf.Module, dict]:
    """A `tf.Module` holding copies of the weights and optimizer state, and its signatures."""
    module = tf.Module(name="supervised_reptile")
    module.weights = [tf.Variable(v, trainable=False) for v in algorithm.model.trainable_variables]
    module.frozen = [tf.Variable(v, trainable=False)
                     for v in algorithm.model.non_trainable_variables]
    module.state = tf.nest.map_structure(lambda t: tf.Variable(t, trainable=False),
                                         algorithm.inner_state())
    num_classes = int(algorithm.model.output_shape[-1])
    image_shape = list(algorithm.model.input_shape[1:])
    key = tf.constant([config.run.seed, EXPORT_STREAM], tf.int64)

    def images_spec(name):
        return tf.TensorSpec([None] + image_shape, tf.float32, name=name)

    def read(values):
        return tf.nest.map_structure(tf.identity, values)

    @tf.function(input_signature=[images_spec("images")])
    def serve(images):
        logits = algorithm.learner.stateless_call(read(module.weights), read(module.frozen),
                                                  images, training=True)[0]
        return {"logits": logits}

    def adapt(support_images, support_labels, query_images, batches):
        tf.debugging.assert_less(support_labels, num_classes,
                                 message=f"support labels must be in 0..{num_classes - 1}")
        logits = algorithm.logits_after_adaptation(
            read(module.weights), read(module.frozen), read(module.state), support_images,
            support_labels, batches, query_images)
        logits = logits[:, :tf.reduce_max(support_labels) + 1]
        return {"logits": logits, "predictions": tf.argmax(logits, -1, output_type=tf.int32)}

    task = [images_spec("support_images"), tf.TensorSpec([None], tf.int32, "support_labels"),
            images_spec("query_images")]

    @tf.function(input_signature=task)
    def adapt_and_predict(support_images, support_labels, query_images):
        support = tf.shape(support_labels)[0]
        # MAML's inner steps each take the whole support set.
        batch = support if config.meta.algorithm == "maml" else config.eval.eval_batch
        batches = mini_batches(key, support, batch, config.eval.eval_iters,
                               config.task.replacement)
        return adapt(support_images, support_labels, query_images, batches)

    @tf.function(input_signature=task + [tf.TensorSpec([None, None], tf.int32, "batches")])
    def adapt_and_predict_with_batches(support_images, support_labels, query_images, batches):
        return adapt(support_images, support_labels, query_images, batches)

    module.serve = serve
    module.adapt_and_predict = adapt_and_predict
    module.adapt_and_predict_with_batches = adapt_and_predict_with_batches
    signatures = {"serving_default": serve, "serve": serve,
                  "adapt_and_predict": adapt_and_predict,
                  "adapt_and_predict_with_batches": adapt_and_predict_with_batches}
    return module, signatures


def export(algorithm, config: Config, directory: str) -> None:
    """Writes the SavedModel and `supervised_reptile.json` to `directory`."""
    module, signatures = build_module(algorithm, config)
    tf.saved_model.save(module, directory, signatures=signatures)
    meta = {"config": dataclasses.asdict(config),
            "image_shape": list(algorithm.model.input_shape[1:]),
            "num_classes": int(algorithm.model.output_shape[-1]),
            "pixels": ("float32 in [0, 1] (uint8 / 255); Omniglot: background 1, strokes 0"),
            "signatures": sorted(signatures)}
    with open(os.path.join(directory, METADATA_FILE), "w") as f:
        json.dump(meta, f, indent=2)


def export_checkpoint(checkpoint_dir: str, directory: str, log_fn=print) -> str:
    """Exports the newest readable checkpoint of a run folder (its `config.json`
    rebuilds the model); returns the checkpoint path."""
    from supervised_reptile import build, checkpoints
    saved = checkpoints.load_saved_config(checkpoint_dir)
    if saved is None:
        raise FileNotFoundError(f"no {config_lib.CONFIG_FILE} in {checkpoint_dir!r}: "
                                "checkpoint_dir must be a training run's folder")
    config = config_lib.from_dict(saved, checkpoint=checkpoint_dir)
    algorithm = build.build_algorithm(config)
    run_checkpoint = checkpoints.RunCheckpoint(checkpoint_dir, algorithm.model,
                                               algorithm.optimizer)
    path, _ = run_checkpoint.restore(log_fn)
    export(algorithm, config, directory)
    return path
