"""Sinusoid regression (MAML paper 5.1, Reptile paper 6.1): tasks, model, loss.

A task is `y = A sin(x - phase)` with `A ~ U[0.1, 5]`, `phase ~ U[0, pi]`,
inputs `x ~ U[-5, 5]` (cbfinn/maml `generate_sinusoid_batch`). Tasks come as
the port's episodes, so Reptile, FOML and MAML train on them unchanged:
"images" are the inputs `x` (float32 `[points, 1]`) and "labels" the targets
`y` (float32 `[points]`).

  * Training task (`TaskSpec` with `num_classes=1`): `num_shots` points; with
    `tail_shots=Q` the first Q points are the tail (MAML's query set, FOML's
    final batch) and the inner batches are drawn from the others.
  * Evaluation task: K random support points; the queries are
    `EVAL_QUERY_POINTS` points evenly spaced over [-5, 5], so the query MSE is
    the error over the whole input range and the same episode draws the
    picture's true curve.

Every task is a pure function of `(seed, stream, index)` (stateless RNG), as
in `episodes.py`.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from supervised_reptile.episodes import (EvalEpisode, TaskSpec, TrainEpisode, fixed_pipeline,
                                         mini_batches, sample_tasks)

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)
EVAL_QUERY_POINTS = 100


def build_sinusoid_model(seed: int = 0, inputs: int = 1) -> keras.Model:
    """The papers' regressor: 1 -> 40 -> 40 -> 1, ReLU hidden layers.

    Glorot-uniform weights (the port's initialiser; the reference code uses a
    truncated normal with sigma 0.01) and zero biases.

    Args:
      seed: derives the initializer seeds.
      inputs: features per point (3 for the oracle baseline; see `input_size`).

    Returns:
      A model mapping float32 `[batch, inputs]` to float32 `[batch, 1]` outputs.
    """
    seeds = [int(s) for s in np.random.default_rng(seed).integers(0, 2**31 - 1, 3)]
    x = keras.Input((inputs,), name="x")
    h = x
    for i in range(2):
        h = keras.layers.Dense(40, activation="relu",
                               kernel_initializer=keras.initializers.GlorotUniform(seeds[i]))(h)
    out = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seeds[2]),
                             name="y")(h)
    return keras.Model(x, out, name="sinusoid")


def mse(labels: tf.Tensor, outputs: tf.Tensor) -> tf.Tensor:
    """Mean squared error of `[batch, 1]` outputs against `[batch]` targets."""
    return tf.reduce_mean(tf.square(outputs[:, 0] - labels))


def _key(seed: int, stream: int, index):
    base = tf.constant([seed, stream], tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))


def _curve(key):
    """`(amplitude, phase)` of a task."""
    u = tf.random.stateless_uniform([2], key)
    return (AMPLITUDE[0] + (AMPLITUDE[1] - AMPLITUDE[0]) * u[0],
            PHASE[0] + (PHASE[1] - PHASE[0]) * u[1])


def _points(key, amplitude, phase, n: int):
    x = tf.random.stateless_uniform([n, 1], key, X_RANGE[0], X_RANGE[1])
    return x, amplitude * tf.sin(x[:, 0] - phase)


def _inputs(x, amplitude, phase, oracle: bool):
    """`x` `[P, 1]`, or with `oracle` `[P, 3]`: x, the amplitude and the phase."""
    if not oracle:
        return x
    rows = tf.shape(x)[0]
    return tf.concat([x, tf.fill([rows, 1], amplitude), tf.fill([rows, 1], phase)], axis=1)


def input_size(oracle: bool) -> int:
    """Features per input point (the oracle baseline also sees amplitude and phase)."""
    return 3 if oracle else 1


def train_dataset(spec: TaskSpec, seed: int, meta_batch: int, stream: int = 1,
                  oracle: bool = False) -> tf.data.Dataset:
    """Endless meta-batches of `TrainEpisode`s (a leading `[meta_batch]` axis).

    With `oracle`, every input also carries its task's amplitude and phase.
    """
    n, tail = spec.num_shots, spec.tail_shots or 0
    num_batches = spec.num_batches - (1 if tail else 0)

    def sample(index):
        k_curve, k_x, k_batch = tf.unstack(tf.random.experimental.stateless_split(
            _key(seed, stream, index), 3))
        amplitude, phase = _curve(k_curve)
        x, y = _points(k_x, amplitude, phase, n)
        batches = tail + mini_batches(k_batch, n - tail, spec.batch_size, num_batches,
                                      spec.replacement)
        return TrainEpisode(_inputs(x, amplitude, phase, oracle), y, batches,
                            tf.range(tail, dtype=tf.int32))

    return fixed_pipeline(sample_tasks(tf.data.Dataset.counter(), sample)
                          .batch(meta_batch, drop_remainder=True)
                          .prefetch(2))


def eval_dataset(spec: TaskSpec, seed: int, stream: int, num_tasks: int,
                 oracle: bool = False) -> tf.data.Dataset:
    """`num_tasks` `EvalEpisode`s: `spec.num_shots` random support points and
    `EVAL_QUERY_POINTS` evenly spaced query points with their true values
    (inputs as in `train_dataset`)."""
    grid = tf.linspace(X_RANGE[0], X_RANGE[1], EVAL_QUERY_POINTS)[:, None]

    def sample(index):
        k_curve, k_x, k_batch = tf.unstack(tf.random.experimental.stateless_split(
            _key(seed, stream, index), 3))
        amplitude, phase = _curve(k_curve)
        x, y = _points(k_x, amplitude, phase, spec.num_shots)
        batches = mini_batches(k_batch, spec.num_shots, spec.batch_size, spec.num_batches,
                               spec.replacement)
        return EvalEpisode(_inputs(x, amplitude, phase, oracle), y, batches,
                           _inputs(grid, amplitude, phase, oracle),
                           amplitude * tf.sin(grid[:, 0] - phase))

    return sample_tasks(tf.data.Dataset.range(num_tasks), sample).cache()
