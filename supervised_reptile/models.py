"""The original's two classifiers as Keras functional models emitting logits.

Both must always be called with `training=True`: the original normalises with
the current batch's statistics in every forward pass, at training and at test
time, and never uses (or updates) the moving averages (docs/semantics.md#batch-statistics).
"""

import keras
import numpy as np
import tensorflow as tf

OMNIGLOT_SHAPE = (28, 28)
MINIIMAGENET_SHAPE = (84, 84, 3)


def _seeds(seed: int, count: int) -> list[int]:
    """Distinct initializer seeds derived from one run seed."""
    return [int(s) for s in np.random.default_rng(seed).integers(0, 2**31 - 1, count)]


@keras.saving.register_keras_serializable(package="supervised_reptile")
class BatchNorm(keras.layers.BatchNormalization):
    """Keras batch norm whose `training=True` pass is TensorFlow's fused kernel.

    Same arithmetic as `keras.layers.BatchNormalization(training=True)` (batch
    mean, biased batch variance, epsilon inside the square root, gamma and
    beta), about 25% faster per inner step on CPU, with first and second
    derivatives. It leaves the moving statistics alone, as the original did
    (they are never used: these models always run in training mode).
    Inference mode (`training=False`) is Keras' own.
    """

    def call(self, inputs, training=None, mask=None):
        if not training or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return super().call(inputs, training=training, mask=mask)
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
        return outputs


def _batch_norm():
    # tf.layers.batch_normalization defaults: momentum 0.99, epsilon 1e-3, gamma and beta. The
    # original ran TensorFlow's fused kernel, and so do both networks here: it is 15-30% faster
    # per meta-iteration and evaluation task than Keras' chain of elementwise ops, and grappler
    # fuses the ReLU after it (docs/performance.md).
    return BatchNorm(momentum=0.99, epsilon=1e-3)


def build_omniglot_model(num_classes: int, seed: int = 0) -> keras.Model:
    """The Omniglot network: 4 x [conv 3x3/2 'same' (64) -> BN -> ReLU] -> dense.

    Args:
      num_classes: width of the logits layer (N).
      seed: derives the Glorot-uniform initializer seeds.

    Returns:
      A model mapping float32 `[batch, 28, 28]` images (background 1.0, strokes
      0.0) to float32 logits `[batch, num_classes]`; 113,221 trainable
      parameters for N=5.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    seeds = _seeds(seed, 5)
    inputs = keras.Input(OMNIGLOT_SHAPE, name="images")
    x = keras.layers.Reshape(OMNIGLOT_SHAPE + (1,))(inputs)
    for i in range(4):
        x = keras.layers.Conv2D(64, 3, strides=2, padding="same",
                                kernel_initializer=keras.initializers.GlorotUniform(seeds[i]))(x)
        x = _batch_norm()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(num_classes, name="logits",
                                kernel_initializer=keras.initializers.GlorotUniform(seeds[4]))(x)
    return keras.Model(inputs, logits, name="omniglot")


def build_miniimagenet_model(num_classes: int, seed: int = 0,
                             image_shape: tuple[int, int, int] = MINIIMAGENET_SHAPE,
                             name: str = "miniimagenet") -> keras.Model:
    """The Mini-ImageNet network: 4 x [conv 3x3 (32) -> BN -> ReLU -> maxpool 2 'same'] -> dense.

    Args:
      num_classes: width of the logits layer (N).
      seed: derives the Glorot-uniform initializer seeds.
      image_shape: `(height, width, channels)` of the input; other datasets
        (tieredImageNet, CIFAR-FS and FC100 at 32x32, a user's folders) use
        the same network, whose dense layer then takes
        `ceil(height / 16) * ceil(width / 16) * 32` features.
      name: the model's name.

    Returns:
      A model mapping float32 `[batch, *image_shape]` images in [0, 1] to
      float32 logits `[batch, num_classes]`; 34,661 trainable parameters for
      N=5 at 84x84x3.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape {tuple(image_shape)} must be (height, width, channels), "
                         "all >= 1")
    seeds = _seeds(seed, 5)
    inputs = keras.Input(tuple(image_shape), name="images")
    x = inputs
    for i in range(4):
        x = keras.layers.Conv2D(32, 3, padding="same",
                                kernel_initializer=keras.initializers.GlorotUniform(seeds[i]))(x)
        x = _batch_norm()(x)
        # The original pools, then applies the ReLU. Both orders give the same
        # values and gradients (ReLU is monotonic, so it commutes with a max),
        # but with the ReLU first grappler fuses it into batch norm and every
        # pooling gradient runs on oneDNN's kernel instead of Eigen's, which
        # took 30% of a meta-iteration here (docs/performance.md).
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2, 2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(num_classes, name="logits",
                                kernel_initializer=keras.initializers.GlorotUniform(seeds[4]))(x)
    return keras.Model(inputs, logits, name=name)


def build(dataset: str, num_classes: int, seed: int = 0,
          image_shape: tuple[int, ...] | None = None) -> keras.Model:
    """The network of a dataset: Omniglot's, or the Mini-ImageNet network at
    `image_shape` for every other image dataset."""
    if dataset in BUILDERS:
        return BUILDERS[dataset](num_classes, seed)
    name = dataset.replace("-", "_") if dataset != "folder" else "images"
    return build_miniimagenet_model(num_classes, seed, image_shape or MINIIMAGENET_SHAPE, name)


#: The original's two networks, at their own image shapes.
BUILDERS = {"omniglot": build_omniglot_model, "miniimagenet": build_miniimagenet_model}
