"""Tasks ("episodes") sampled from a class pool, as `tf.data` pipelines.

Every task is a pure function of `(seed, stream, index)`: the sampler derives
a stateless RNG key from them, so the same seed gives the same tasks in any
order, on any number of workers, and a resumed run continues the exact
sequence by starting at a later index.

Sampling rules (docs/semantics.md#tasks and #mini-batches):
  * N distinct classes uniformly at random; the class drawn j-th gets label j.
  * `shots` distinct images per class (training: the training shots;
    evaluation: K + 1, and the first image of every class becomes the
    single query of that class).
  * Inner mini-batches, as indices into the task's samples: without
    replacement, consecutive slices of a stream of reshuffled passes (a batch
    may straddle two passes); with replacement, each batch an independent
    draw without repeats.
  * FOML tail (`tail_shots=T`): T samples of every class (ordered by round,
    then label) are kept aside and form the final batch; the other
    `inner_iters - 1` batches come from the rest.
"""

import dataclasses
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from supervised_reptile.data.class_pool import PIXEL_SCALE, ClassPool

#: Stream ids: independent task sequences drawn from one seed.
TRAIN_STREAM = 1
MONITOR_STREAM = 2   # + split index
FINAL_EVAL_STREAM = 10  # + split index


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """The shape of a task.

    Attributes:
      num_classes: N.
      num_shots: images per class drawn for the task (for evaluation tasks
        this excludes the one query per class).
      batch_size: inner mini-batch size.
      num_batches: inner steps.
      replacement: mini-batch rule (see module docstring).
      tail_shots: FOML's tail (MAML's query set), or None.
    """

    num_classes: int
    num_shots: int
    batch_size: int
    num_batches: int
    replacement: bool = False
    tail_shots: int | None = None

    def __post_init__(self):
        for name in ("num_classes", "num_shots", "batch_size", "num_batches"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.tail_shots is not None:
            if not 0 < self.tail_shots < self.num_shots:
                raise ValueError(f"tail_shots {self.tail_shots} must be between 1 and "
                                 f"{self.num_shots - 1} (num_shots minus one)")
            if self.num_batches < 2:
                raise ValueError("tail_shots needs num_batches >= 2 (the original loops "
                                 "forever with 1: no batch is left before the tail)")
        pool = self.num_classes * (self.num_shots - (self.tail_shots or 0))
        if self.replacement and self.batch_size > pool:
            raise ValueError(f"batch size {self.batch_size} is larger than the {pool} "
                             "samples it is drawn from, which replacement=True cannot do")


class TrainEpisode(NamedTuple):
    """One meta-training task (a leading `[meta_batch]` axis when batched).

    images: float32 `[N * shots, *image_shape]`, class-grouped.
    labels: int32 `[N * shots]`.
    batches: int32 `[num_batches, batch_size]`, indices into `images` (without
      a tail), or `[num_batches - 1, batch_size]` followed by `tail`.
    tail: int32 `[N * tail_shots]` indices of the final batch; `[0]` without a tail.
    """

    images: tf.Tensor
    labels: tf.Tensor
    batches: tf.Tensor
    tail: tf.Tensor


class EvalEpisode(NamedTuple):
    """One evaluation task.

    support_images: float32 `[N * K, *image_shape]`, class-grouped.
    support_labels: int32 `[N * K]`.
    batches: int32 `[eval_iters, eval_batch]`, indices into the support set.
    query_images: float32 `[N, *image_shape]`, one per class, ordered by label.
    query_labels: int32 `[N]` (= 0..N-1).
    """

    support_images: tf.Tensor
    support_labels: tf.Tensor
    batches: tf.Tensor
    query_images: tf.Tensor
    query_labels: tf.Tensor


class Sampler:
    """A class pool moved into TensorFlow once, and stateless task sampling from it.

    Build one per pool (`sampler_for`) and pass it to every dataset drawn from
    that pool: a sampler holds a TensorFlow copy of the pool's images (about
    0.8 GB for Mini-ImageNet's training split), after which the NumPy pool can
    be dropped.
    """

    def __init__(self, pool: ClassPool):
        # A resource variable is captured by reference, so the (possibly
        # gigabyte-sized) pool is never copied into a function graph. Filling
        # it in place, a few classes at a time, keeps the peak at two copies
        # (NumPy + TensorFlow); `tf.Variable(array)` briefly needs three.
        self.images = tf.Variable(tf.zeros(pool.images.shape, tf.uint8), trainable=False,
                                  name="pool_images")
        for start in range(0, pool.num_classes, 8):
            stop = min(start + 8, pool.num_classes)
            self.images.scatter_update(tf.IndexedSlices(pool.images[start:stop],
                                                        tf.range(start, stop)))
        self._describe(pool)

    def _describe(self, pool: ClassPool) -> None:
        self.counts = tf.constant(pool.counts, tf.int32)
        self.max_count = pool.images.shape[1]
        self.num_classes = pool.num_classes
        self.min_count = pool.min_count
        self.image_shape = pool.image_shape
        self.names = pool.names

    def check(self, num_classes: int, num_shots: int, what: str) -> None:
        """Raises ValueError if tasks of this size cannot be drawn."""
        if num_classes > self.num_classes:
            raise ValueError(f"{what}: `classes` {num_classes} is more than the "
                             f"{self.num_classes} classes available")
        if num_shots > self.min_count:
            raise ValueError(f"{what}: {num_shots} images per class are needed but the "
                             f"smallest class has {self.min_count}")

    def pixels(self, rows, picks):
        """uint8 `[N, shots, *image_shape]`: image `picks[i, j]` of class `rows[i, j]`."""
        return tf.gather_nd(self.images, tf.stack([rows, picks], axis=-1))

    def images_and_labels(self, key, num_classes: int, num_shots: int):
        """`[N * shots, *shape]` float32 images, class-grouped, and int32 labels."""
        k_class, k_image = tf.unstack(tf.random.experimental.stateless_split(key, 2))
        classes = tf.argsort(tf.random.stateless_uniform([self.num_classes], k_class))[:num_classes]
        counts = tf.gather(self.counts, classes)
        noise = tf.random.stateless_uniform([num_classes, self.max_count], k_image)
        valid = tf.range(self.max_count)[None, :] < counts[:, None]
        picks = tf.argsort(tf.where(valid, noise, 2.0), axis=1)[:, :num_shots]
        rows = tf.broadcast_to(classes[:, None], picks.shape)
        images = tf.cast(self.pixels(rows, picks), tf.float32) / PIXEL_SCALE
        images = tf.reshape(images, [num_classes * num_shots] + list(images.shape[2:]))
        labels = tf.repeat(tf.range(num_classes, dtype=tf.int32), num_shots)
        return images, labels


class MappedSampler(Sampler):
    """The same tasks drawn from a memory-mapped pool (a decoded store) that
    stays on disk: each task's images are read from the file as the task is
    drawn, so a run holds only the pages its tasks touch (tieredImageNet's
    16.5 GB train on a machine with less memory)."""

    def __init__(self, pool: ClassPool):
        self._pool_images = pool.images
        self._describe(pool)

    def pixels(self, rows, picks):
        def read(rows, picks):
            return np.asarray(self._pool_images[rows, picks])

        out = tf.numpy_function(read, [rows, picks], tf.uint8, stateful=False)
        return tf.ensure_shape(out, list(picks.shape) + list(self.image_shape))


def sampler_for(pool: "ClassPool | Sampler") -> Sampler:
    """A `MappedSampler` for a pool whose images are a memory-mapped file, else
    a `Sampler` (the pool moved into TensorFlow); a `Sampler` is returned as it is."""
    if isinstance(pool, Sampler):
        return pool
    return MappedSampler(pool) if isinstance(pool.images, np.memmap) else Sampler(pool)


def mini_batches(key, pool_size, batch_size, num_batches: int, replacement: bool) -> tf.Tensor:
    """Inner-loop batch indices `[num_batches, batch_size]` into `range(pool_size)`.

    `pool_size` and `batch_size` may be Python ints or scalar tensors known
    only when the graph runs (the SavedModel's signatures). With
    `replacement`, a batch larger than the pool holds the whole pool.
    """
    if replacement:
        noise = tf.random.stateless_uniform(tf.stack([num_batches, pool_size]), key)
        return tf.argsort(noise, axis=1)[:, :batch_size]
    total = num_batches * batch_size
    passes = (total + pool_size - 1) // pool_size
    noise = tf.random.stateless_uniform(tf.stack([passes, pool_size]), key)
    stream = tf.reshape(tf.argsort(noise, axis=1), [-1])[:total]
    return tf.reshape(stream, tf.stack([num_batches, batch_size]))


def _round_positions(num_classes: int, num_shots: int, rounds) -> np.ndarray:
    """Positions in a class-grouped task of the r-th sample of each class,
    ordered round-major (r, then label): the original's `_split_train_test`."""
    return np.array([c * num_shots + r for r in rounds for c in range(num_classes)], np.int32)


def _class_positions(num_classes: int, num_shots: int, rounds) -> np.ndarray:
    """The same positions, class-grouped (label, then r)."""
    return np.array([c * num_shots + r for c in range(num_classes) for r in rounds], np.int32)


def _task_key(seed: int, stream: int, index):
    base = tf.constant([seed, stream], tf.int64)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(index, tf.int64))


def fixed_pipeline(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` without tf.data's autotuner (parallel maps: one call per core): deleting
    an autotuned iterator could wait up to a minute for its thread (docs/performance.md)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def sample_tasks(indices: tf.data.Dataset, sample) -> tf.data.Dataset:
    """`sample(index)` over `indices`, in parallel and in order, traced as written:
    tf.data's default AutoGraph conversion only cost start-up (docs/performance.md)."""
    return indices.map(tf.autograph.experimental.do_not_convert(sample),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def train_dataset(pool: "ClassPool | Sampler", spec: TaskSpec, seed: int, meta_batch: int,
                  start_iteration: int = 0) -> tf.data.Dataset:
    """An endless dataset of meta-batches of `TrainEpisode`s.

    Element `i` (counting from `start_iteration`) holds tasks
    `i * meta_batch ... (i + 1) * meta_batch - 1` of the training stream, each
    tensor with a leading `[meta_batch]` axis.
    """
    sampler = sampler_for(pool)
    sampler.check(spec.num_classes, spec.num_shots, "training tasks")
    n, shots, tail = spec.num_classes, spec.num_shots, spec.tail_shots or 0
    rest = _class_positions(n, shots, range(tail, shots))
    tail_idx = _round_positions(n, shots, range(tail))
    num_batches = spec.num_batches - (1 if tail else 0)

    def sample(index):
        key = _task_key(seed, TRAIN_STREAM, index)
        k_task, k_batch = tf.unstack(tf.random.experimental.stateless_split(key, 2))
        images, labels = sampler.images_and_labels(k_task, n, shots)
        batches = mini_batches(k_batch, len(rest), spec.batch_size, num_batches, spec.replacement)
        return TrainEpisode(images, labels, tf.gather(rest, batches), tf.constant(tail_idx))

    start = start_iteration * meta_batch
    return fixed_pipeline(sample_tasks(tf.data.Dataset.counter(start), sample)
                          .batch(meta_batch, drop_remainder=True)
                          .prefetch(2))


def eval_dataset(pool: "ClassPool | Sampler", spec: TaskSpec, seed: int, stream: int,
                 num_tasks: int | None = None, start: int = 0, step: int = 1) -> tf.data.Dataset:
    """`EvalEpisode`s: N x (K + 1) images, one query per class, the rest the support set.

    Args:
      pool: the classes to draw from (a `ClassPool`, or its `Sampler`).
      spec: `num_shots` is K (support images per class).
      seed: the run seed.
      stream: which task sequence (e.g. `FINAL_EVAL_STREAM + split`).
      num_tasks: length of the dataset; None for endless.
      start, step: the task indices are `start, start + step, ...` (monitoring
        uses the iteration number, so a resumed run sees the same tasks).
    """
    sampler = sampler_for(pool)
    sampler.check(spec.num_classes, spec.num_shots + 1, "evaluation tasks")
    n, k = spec.num_classes, spec.num_shots
    query_idx = _round_positions(n, k + 1, [0])
    support_idx = _class_positions(n, k + 1, range(1, k + 1))

    def sample(index):
        key = _task_key(seed, stream, index)
        k_task, k_batch = tf.unstack(tf.random.experimental.stateless_split(key, 2))
        images, labels = sampler.images_and_labels(k_task, n, k + 1)
        batches = mini_batches(k_batch, n * k, spec.batch_size, spec.num_batches,
                               spec.replacement)
        return EvalEpisode(tf.gather(images, support_idx), tf.gather(labels, support_idx),
                           batches, tf.gather(images, query_idx), tf.gather(labels, query_idx))

    indices = (tf.data.Dataset.counter(start, step) if num_tasks is None
               else tf.data.Dataset.range(start, start + num_tasks * step, step))
    return fixed_pipeline(sample_tasks(indices, sample).prefetch(4))
