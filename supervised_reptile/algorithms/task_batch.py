"""Many tasks at once: a model's forward pass with one set of weights per task.

Used to adapt several tasks in one inner loop: evaluation of many tasks at
once, and the "at once" task schedule of meta-training. The weights are stacked: every tensor of
the model's weight list gains a leading `[tasks]` axis, and images gain one too.

How: the tasks are folded into the channel axis. Activations are kept as
`[batch, height, width, tasks * channels]`; a convolution becomes one grouped
convolution (`groups = tasks`: each task's channels see only its own filter);
batch norm, ReLU and max pooling act per channel, so per task, unchanged; the
final dense layer is one batched matrix product. Every task sees the same ops
as in `model(images, training=True)`, so logits agree with the one-task Keras
model up to float rounding (tests/test_task_batch.py checks it).

Only the layers of this project's models are supported: the two image
classifiers (see `_LAYERS`) and stacks of Dense layers (the sinusoid
regressor: one batched matrix product per layer); `check_supported` names
any other.
"""

import keras
import tensorflow as tf

from supervised_reptile.models import BatchNorm


def _weights_of(layer, weights, index):
    """The stacked tensors of `layer`'s trainable weights, in its own order."""
    return [weights[index[v.path]] for v in layer.trainable_weights]


def _grouped_kernel(kernel):
    """[T, kh, kw, Cin, Cout] -> [kh, kw, Cin, T * Cout]: group t uses filters t."""
    t, kh, kw, c_in, c_out = kernel.shape
    return tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]), [kh, kw, c_in, t * c_out])


def _stacked_kernel(kernel, tasks):
    kh, kw, c_in, tc = kernel.shape
    return tf.transpose(tf.reshape(kernel, [kh, kw, c_in, tasks, tc // tasks]), [3, 0, 1, 2, 4])


def to_grouped(nest):
    """Stacked conv kernels (the only rank-5 tensors of stacked weights or
    optimizer states) in the grouped layout `forward` uses, so an inner loop
    can keep them that way (no transposes per step); the rest is unchanged."""
    return tf.nest.map_structure(lambda t: _grouped_kernel(t) if t.shape.rank == 5 else t, nest)


def from_grouped(nest, tasks: int):
    """The inverse of `to_grouped` (grouped kernels are the only rank-4 tensors)."""
    return tf.nest.map_structure(
        lambda t: _stacked_kernel(t, tasks) if t.shape.rank == 4 else t, nest)


def _conv(layer, w, x, tasks):
    kernel, bias = w if layer.use_bias else (w[0], None)
    if kernel.shape.rank == 5:
        kernel = _grouped_kernel(kernel)
    x = tf.nn.conv2d(x, kernel, layer.strides, layer.padding.upper(),
                     dilations=layer.dilation_rate)
    if bias is not None:
        x = tf.nn.bias_add(x, tf.reshape(bias, [-1]))
    return x


def _batch_norm(layer, w, x, tasks):
    """Training-mode batch norm (batch statistics) on every task's channels."""
    gamma, beta = (tf.reshape(t, [-1]) for t in w)
    if isinstance(layer, BatchNorm):  # the fused kernel, as BatchNorm.call
        return tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=layer.epsilon,
                                                is_training=True)[0]
    # Keras' own arithmetic (BatchNormalization.call, training=True).
    mean, variance = keras.ops.moments(x, axes=[0, 1, 2])
    return keras.ops.batch_normalization(x, mean, variance, axis=-1, offset=beta,
                                         scale=gamma, epsilon=layer.epsilon)


def _relu(layer, w, x, tasks):
    return tf.nn.relu(x)


def _max_pool(layer, w, x, tasks):
    return tf.nn.max_pool2d(x, layer.pool_size, layer.strides, layer.padding.upper())


_LAYERS = {keras.layers.Conv2D: _conv, keras.layers.BatchNormalization: _batch_norm,
           keras.layers.ReLU: _relu, keras.layers.MaxPooling2D: _max_pool}


_ACTIVATIONS = {keras.activations.linear: tf.identity, keras.activations.relu: tf.nn.relu}


def _is_mlp(model: keras.Model) -> bool:
    """An input, then only Dense layers (the sinusoid regressor)."""
    return all(isinstance(layer, keras.layers.Dense) for layer in model.layers[1:])


def _check_mlp(model: keras.Model) -> None:
    for i, layer in enumerate(model.layers[1:], 1):
        if layer.activation not in _ACTIVATIONS:
            raise ValueError(f"layer {i} {layer.name!r}: activation {layer.activation.__name__!r} "
                             "is not supported by the task-batched forward pass; supported: "
                             "linear, relu")


def _mlp_forward(model: keras.Model, weights: list, x: tf.Tensor) -> tf.Tensor:
    """Dense layers on `[tasks, batch, features]`: one batched matrix product each."""
    index = {v.path: i for i, v in enumerate(model.trainable_variables)}
    for layer in model.layers[1:]:
        kernel, bias = _weights_of(layer, weights, index)
        x = _ACTIVATIONS[layer.activation](tf.matmul(x, kernel) + bias[:, None, :])
    return x


def check_supported(model: keras.Model) -> None:
    """Raises ValueError naming the first layer `forward` cannot run."""
    if _is_mlp(model):
        return _check_mlp(model)
    layers = model.layers
    for i, layer in enumerate(layers):
        ok = (isinstance(layer, (keras.layers.InputLayer, keras.layers.Reshape)) and i <= 1
              or isinstance(layer, tuple(_LAYERS))
              or isinstance(layer, keras.layers.Flatten) and i == len(layers) - 2
              or isinstance(layer, keras.layers.Dense) and i == len(layers) - 1)
        if isinstance(layer, keras.layers.ReLU):
            ok = ok and layer.max_value is None and not layer.negative_slope and not layer.threshold
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            ok = ok and layer.activation is keras.activations.linear
        if isinstance(layer, keras.layers.Conv2D):
            ok = ok and layer.groups == 1 and layer.data_format == "channels_last"
        if isinstance(layer, keras.layers.BatchNormalization):
            ok = ok and layer.axis in (-1, 3) and layer.center and layer.scale
        if not ok:
            raise ValueError(f"layer {i} {layer.name!r} ({type(layer).__name__}) is not supported "
                             "by the task-batched forward pass; supported: an input reshape, "
                             "Conv2D, BatchNormalization, ReLU, MaxPooling2D, then Flatten "
                             "and a final Dense layer")


def forward(model: keras.Model, weights: list, images: tf.Tensor) -> tf.Tensor:
    """Logits of every task with its own weights, in training mode (batch statistics).

    Args:
      model: the (single-task) Keras model; only its layer structure is used.
      weights: stacked weights: one tensor per `model.trainable_variables`
        entry, each `[tasks, *variable.shape]` (conv kernels may also be in
        the grouped layout of `to_grouped`).
      images: float32 `[tasks, batch, *model input shape]`.

    Returns:
      float32 logits `[tasks, batch, num_classes]`.
    """
    if _is_mlp(model):
        return _mlp_forward(model, weights, images)
    index = {v.path: i for i, v in enumerate(model.trainable_variables)}
    tasks, batch = images.shape[0], images.shape[1]
    layers = model.layers
    shape = layers[1].target_shape if isinstance(layers[1], keras.layers.Reshape) else None
    x = images if shape is None else tf.reshape(images, [tasks, batch, *shape])
    # [T, B, H, W, C] -> [B, H, W, T * C]
    _, _, h, w, c = x.shape
    x = tf.reshape(tf.transpose(x, [1, 2, 3, 0, 4]), [batch, h, w, tasks * c])
    for layer in layers:
        for cls, fn in _LAYERS.items():
            if isinstance(layer, cls):
                x = fn(layer, _weights_of(layer, weights, index), x, tasks)
                break
    # Flatten per task in Keras' (h, w, c) order, then each task's dense layer.
    _, h, w, tc = x.shape
    x = tf.reshape(x, [batch, h, w, tasks, tc // tasks])
    x = tf.reshape(tf.transpose(x, [3, 0, 1, 2, 4]), [tasks, batch, h * w * (tc // tasks)])
    kernel, bias = _weights_of(layers[-1], weights, index)
    return tf.matmul(x, kernel) + bias[:, None, :]
