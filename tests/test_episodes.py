"""Tests of `supervised_reptile.episodes` against the original's sampling rules (docs/semantics.md#tasks).

The pool's pixels encode where each image came from: image `i` of class `c`
is `[c + 1, i + 1, 200]` (uint8), padding rows are `[0, 0, 0]`. Decoding a
sampled float image therefore tells its class and index, and any padding row
that leaked into a task is visible.
"""

import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import episodes, sinusoid
from supervised_reptile.data.class_pool import ClassPool
from supervised_reptile.episodes import TaskSpec, eval_dataset, mini_batches, train_dataset

COUNTS = [5, 3, 6, 4, 5, 3, 7]   # ragged; min 3, max 7
MARK = 200


def make_pool(counts=COUNTS):
    images = np.zeros((len(counts), max(counts), 3), np.uint8)
    for c, n in enumerate(counts):
        for i in range(n):
            images[c, i] = [c + 1, i + 1, MARK]
    return ClassPool(images, np.array(counts, np.int32), tuple(f"class{c}" for c in range(len(counts))))


@pytest.fixture(scope="module")
def pool():
    return make_pool()


def decode(images):
    """float images [..., 3] -> (class, index) int arrays; asserts no padding and exact /255."""
    raw = np.rint(np.asarray(images) * 255).astype(np.int64)
    np.testing.assert_array_equal(np.asarray(images), raw.astype(np.float32) / np.float32(255))
    assert (raw[..., 2] == MARK).all(), "a padding row was sampled"
    return raw[..., 0] - 1, raw[..., 1] - 1


def take(ds, n):
    return list(ds.take(n).as_numpy_iterator())


def key(a, b=0):
    return tf.constant([a, b], tf.int64)


def assert_task(pool, images, labels, n, shots):
    """A class-grouped task of n classes x shots images, decoded and checked; returns classes, indices."""
    cls, idx = decode(images)
    np.testing.assert_array_equal(labels, np.repeat(np.arange(n), shots))
    cls = cls.reshape(n, shots)
    idx = idx.reshape(n, shots)
    # Label j is one class throughout the task; the N classes are distinct.
    assert (cls == cls[:, :1]).all()
    assert len(set(cls[:, 0])) == n
    for j in range(n):
        c = cls[j, 0]
        assert len(set(idx[j])) == shots           # distinct images within a class
        assert (idx[j] >= 0).all() and (idx[j] < pool.counts[c]).all()
    return cls[:, 0], idx


def assert_passes(stream, pool_size):
    """Every consecutive run of pool_size entries (a pass) is a permutation."""
    stream = np.asarray(stream).reshape(-1)
    for start in range(0, len(stream), pool_size):
        chunk = stream[start:start + pool_size]
        if len(chunk) == pool_size:
            assert sorted(chunk) == list(range(pool_size)), (start, chunk)
        else:
            assert len(set(chunk)) == len(chunk) and (chunk < pool_size).all()


def original_split_train_test(samples, test_shots=1):
    """The original `_split_train_test` (reptile.py)."""
    train_set = list(samples)
    test_set = []
    labels = set(item[1] for item in train_set)
    for _ in range(test_shots):
        for label in labels:
            for i, item in enumerate(train_set):
                if item[1] == label:
                    del train_set[i]
                    test_set.append(item)
                    break
    if len(test_set) < len(labels) * test_shots:
        raise IndexError("not enough examples of each class for test set")
    return train_set, test_set


# ------------------------------------------------------------------ mini_batches

def test_mini_batches_straddle_pass_boundaries():
    b = mini_batches(key(7, 11), 25, 15, 5, False).numpy()
    assert b.shape == (5, 15) and b.dtype == np.int32
    stream = b.reshape(-1)
    assert_passes(stream, 25)
    # Batch 2 = last 10 of pass 1 + first 5 of pass 2 (the partial batch carries over).
    np.testing.assert_array_equal(b[1, :10], stream[15:25])
    assert sorted(np.concatenate([b[0], b[1, :10]])) == list(range(25))
    np.testing.assert_array_equal(b[1, 10:], stream[25:30])
    # Passes are reshuffled, not repeated.
    assert not np.array_equal(stream[:25], stream[25:50])


def test_mini_batches_straddling_batch_may_repeat_a_sample():
    # As in the original, a batch spanning two passes can hold a sample twice
    # (P ~ 0.94 per key for the second batch here; the keys are fixed).
    dup = 0
    for k in range(6):
        b = mini_batches(key(k, 3), 25, 15, 2, False).numpy()
        dup += len(set(b[1])) < 15
    assert dup > 0


def test_mini_batches_less_than_one_pass():
    b = mini_batches(key(1), 10, 3, 2, False).numpy()
    assert b.shape == (2, 3)
    assert len(set(b.reshape(-1))) == 6 and (b < 10).all() and (b >= 0).all()


def test_mini_batches_batch_larger_than_pool():
    b = mini_batches(key(2), 4, 10, 2, False).numpy()
    assert b.shape == (2, 10)
    assert_passes(b, 4)


def test_mini_batches_exact_passes_paper_omniglot():
    # 5-way, 10 train shots, 5 batches of 10: exactly one pass (the paper commands' setting).
    b = mini_batches(key(3), 50, 10, 5, False).numpy()
    assert sorted(b.reshape(-1)) == list(range(50))


def test_mini_batches_with_replacement():
    b = mini_batches(key(4), 10, 8, 6, True).numpy()
    assert b.shape == (6, 8) and b.dtype == np.int32
    for row in b:
        assert len(set(row)) == 8 and (row >= 0).all() and (row < 10).all()
    # Independent across batches: they are not all the same set or order.
    assert len({tuple(r) for r in b}) > 1
    # With 8 of 10 per batch, some index must recur across batches.
    assert len(set(b.reshape(-1))) <= 10


def test_mini_batches_deterministic_in_key():
    a = mini_batches(key(5, 1), 12, 5, 4, False).numpy()
    np.testing.assert_array_equal(a, mini_batches(key(5, 1), 12, 5, 4, False).numpy())
    assert not np.array_equal(a, mini_batches(key(5, 2), 12, 5, 4, False).numpy())


# ------------------------------------------------------------------ TaskSpec

@pytest.mark.parametrize("field", ["num_classes", "num_shots", "batch_size", "num_batches"])
@pytest.mark.parametrize("value", [0, -2])
def test_taskspec_rejects_non_positive(field, value):
    kw = dict(num_classes=5, num_shots=5, batch_size=5, num_batches=5)
    kw[field] = value
    with pytest.raises(ValueError, match=f"{field} must be >= 1, got {value}"):
        TaskSpec(**kw)


@pytest.mark.parametrize("tail", [0, 3, 4, -1])
def test_taskspec_rejects_bad_tail(tail):
    with pytest.raises(ValueError, match=f"tail_shots {tail} must be between 1 and 2"):
        TaskSpec(5, 3, 5, 4, tail_shots=tail)


def test_taskspec_tail_needs_two_batches():
    with pytest.raises(ValueError, match="num_batches >= 2"):
        TaskSpec(5, 3, 5, 1, tail_shots=1)
    TaskSpec(5, 3, 5, 2, tail_shots=1)  # fine


def test_taskspec_replacement_batch_larger_than_pool():
    with pytest.raises(ValueError, match="batch size 11 .* 10 samples"):
        TaskSpec(5, 2, 11, 3, replacement=True)
    TaskSpec(5, 2, 10, 3, replacement=True)  # exactly the pool: fine
    TaskSpec(5, 2, 11, 3, replacement=False)  # spans passes without replacement: fine
    # With a tail the batches come from the remaining shots only: 5 x (3 - 1).
    with pytest.raises(ValueError, match="batch size 11 .* 10 samples"):
        TaskSpec(5, 3, 11, 3, replacement=True, tail_shots=1)


def test_check_pool_errors(pool):
    with pytest.raises(ValueError, match="training tasks: `classes` 8 is more than the 7 classes"):
        train_dataset(pool, TaskSpec(8, 1, 1, 1), 0, 1)
    with pytest.raises(ValueError, match="training tasks: 4 images per class .* smallest class has 3"):
        train_dataset(pool, TaskSpec(2, 4, 1, 1), 0, 1)
    with pytest.raises(ValueError, match="evaluation tasks: `classes` 8 is more than the 7"):
        eval_dataset(pool, TaskSpec(8, 1, 1, 1), 0, 2)
    # Evaluation needs K + 1 per class (the query).
    with pytest.raises(ValueError, match="evaluation tasks: 4 images per class .* smallest class has 3"):
        eval_dataset(pool, TaskSpec(2, 3, 1, 1), 0, 2)


# ------------------------------------------------------------------ train_dataset

TRAIN_SPEC = TaskSpec(num_classes=4, num_shots=3, batch_size=5, num_batches=4)


def test_train_element_spec(pool):
    ds = train_dataset(pool, TRAIN_SPEC, seed=0, meta_batch=2)
    spec = ds.element_spec
    assert isinstance(spec, episodes.TrainEpisode)
    assert spec.images.shape == (2, 12, 3) and spec.images.dtype == tf.float32
    assert spec.labels.shape == (2, 12) and spec.labels.dtype == tf.int32
    assert spec.batches.shape == (2, 4, 5) and spec.batches.dtype == tf.int32
    assert spec.tail.shape == (2, 0) and spec.tail.dtype == tf.int32


def test_pipelines_run_without_the_autotuner(pool):
    # Its thread made deleting an iterator wait up to a minute (episodes.fixed_pipeline).
    for ds in (train_dataset(pool, TRAIN_SPEC, seed=0, meta_batch=2),
               eval_dataset(pool, TaskSpec(2, 2, 1, 1), 0, 2),
               eval_dataset(pool, TaskSpec(2, 2, 1, 1), 0, 2, num_tasks=3),
               sinusoid.train_dataset(TaskSpec(1, 5, 5, 2), seed=0, meta_batch=2)):
        assert ds.options().autotune.enabled is False


def test_task_sampling_is_traced_without_autograph():
    # AutoGraph's conversion only cost start-up; with it, this `if` on a
    # tensor would quietly become a tf.cond.
    def sample(index):
        if index > 0:
            return index
        return -index

    with pytest.raises(TypeError, match="bool"):
        episodes.sample_tasks(tf.data.Dataset.range(3), sample)
    doubled = episodes.sample_tasks(tf.data.Dataset.range(4), lambda i: 2 * i)
    assert [int(x) for x in doubled] == [0, 2, 4, 6]


def test_train_tasks_follow_the_rules(pool):
    elements = take(train_dataset(pool, TRAIN_SPEC, seed=1, meta_batch=3), 8)
    first_classes, seen, seen_idx, unsorted = set(), set(), {}, 0
    for el in elements:
        for t in range(3):
            classes, idx = assert_task(pool, el.images[t], el.labels[t], 4, 3)
            first_classes.add(classes[0])
            seen.update(classes)
            for c, row in zip(classes, idx):
                seen_idx.setdefault(c, set()).update(row)
                unsorted += list(row) != sorted(row)
                if pool.counts[c] == 3:  # ragged: a 3-image class gives exactly its 3 images
                    assert sorted(row) == [0, 1, 2]
            assert_passes(el.batches[t], 12)
            assert el.batches[t].shape == (4, 5)
    assert seen == set(range(7))                  # every class gets drawn
    assert len(first_classes) > 1                  # labels are a random assignment
    assert unsorted > 0                            # within-class order is random
    assert seen_idx[6] == set(range(7))            # the largest class's last image is reachable
    # Two tasks of one meta-batch are different tasks.
    assert not np.array_equal(elements[0].images[0], elements[0].images[1])


def test_train_same_seed_same_tasks_other_seed_other_tasks(pool):
    a = take(train_dataset(pool, TRAIN_SPEC, seed=3, meta_batch=2), 3)
    b = take(train_dataset(pool, TRAIN_SPEC, seed=3, meta_batch=2), 3)
    c = take(train_dataset(pool, TRAIN_SPEC, seed=4, meta_batch=2), 3)
    for x, y in zip(a, b):
        for f in episodes.TrainEpisode._fields:
            np.testing.assert_array_equal(getattr(x, f), getattr(y, f))
    assert not all(np.array_equal(x.images, z.images) for x, z in zip(a, c))
    assert not all(np.array_equal(x.batches, z.batches) for x, z in zip(a, c))


def test_train_start_iteration_continues_the_sequence(pool):
    full = take(train_dataset(pool, TRAIN_SPEC, seed=5, meta_batch=2), 4)
    resumed = take(train_dataset(pool, TRAIN_SPEC, seed=5, meta_batch=2, start_iteration=2), 2)
    for k in range(2):
        for f in episodes.TrainEpisode._fields:
            np.testing.assert_array_equal(getattr(resumed[k], f), getattr(full[k + 2], f))
    assert not np.array_equal(resumed[0].images, full[0].images)


def test_train_element_i_holds_tasks_i_times_meta_batch(pool):
    one = take(train_dataset(pool, TRAIN_SPEC, seed=6, meta_batch=1), 4)
    two = take(train_dataset(pool, TRAIN_SPEC, seed=6, meta_batch=2), 2)
    for t in range(4):
        np.testing.assert_array_equal(one[t].images[0], two[t // 2].images[t % 2])
        np.testing.assert_array_equal(one[t].batches[0], two[t // 2].batches[t % 2])


def test_train_with_replacement(pool):
    spec = TaskSpec(3, 3, batch_size=6, num_batches=5, replacement=True)
    (el,) = take(train_dataset(pool, spec, seed=0, meta_batch=1), 1)
    assert_task(pool, el.images[0], el.labels[0], 3, 3)
    b = el.batches[0]
    assert b.shape == (5, 6)
    for row in b:
        assert len(set(row)) == 6 and (row < 9).all() and (row >= 0).all()


@pytest.mark.parametrize("tail", [1, 2])
def test_foml_tail_round_major_and_disjoint(pool, tail):
    n, shots = 4, 3
    spec = TaskSpec(n, shots, batch_size=3, num_batches=4, tail_shots=tail)
    ds = train_dataset(pool, spec, seed=2, meta_batch=2)
    assert ds.element_spec.batches.shape == (2, 3, 3)      # num_batches - 1 rows
    assert ds.element_spec.tail.shape == (2, n * tail)
    # The original's split of a class-grouped task [(position, label)].
    samples = [(p, p // shots) for p in range(n * shots)]
    ref_rest, ref_tail = original_split_train_test(samples, test_shots=tail)
    ref_tail = [p for p, _ in ref_tail]
    ref_rest = [p for p, _ in ref_rest]
    expected_tail = [c * shots + r for r in range(tail) for c in range(n)]
    assert ref_tail == expected_tail
    for el in take(ds, 2):
        for t in range(2):
            assert_task(pool, el.images[t], el.labels[t], n, shots)
            np.testing.assert_array_equal(el.tail[t], expected_tail)
            np.testing.assert_array_equal(el.labels[t][el.tail[t]], list(range(n)) * tail)
            batches = el.batches[t]
            assert not set(batches.reshape(-1)) & set(expected_tail)
            assert set(batches.reshape(-1)) <= set(ref_rest)
            # The batches are passes over the remaining samples.
            pos = {p: k for k, p in enumerate(ref_rest)}
            assert_passes([pos[p] for p in batches.reshape(-1)], len(ref_rest))


def test_foml_tail_with_replacement(pool):
    spec = TaskSpec(3, 3, batch_size=6, num_batches=3, replacement=True, tail_shots=1)
    (el,) = take(train_dataset(pool, spec, seed=0, meta_batch=1), 1)
    tail = [0, 3, 6]
    np.testing.assert_array_equal(el.tail[0], tail)
    assert el.batches[0].shape == (2, 6)
    for row in el.batches[0]:
        assert sorted(row) == [1, 2, 4, 5, 7, 8]   # 6 of the 6 remaining, no repeats


# ------------------------------------------------------------------ eval_dataset

EVAL_SPEC = TaskSpec(num_classes=4, num_shots=2, batch_size=3, num_batches=5)


def test_eval_element_spec_and_length(pool):
    ds = eval_dataset(pool, EVAL_SPEC, seed=0, stream=episodes.FINAL_EVAL_STREAM, num_tasks=7)
    spec = ds.element_spec
    assert isinstance(spec, episodes.EvalEpisode)
    assert spec.support_images.shape == (8, 3) and spec.support_images.dtype == tf.float32
    assert spec.support_labels.shape == (8,) and spec.support_labels.dtype == tf.int32
    assert spec.batches.shape == (5, 3) and spec.batches.dtype == tf.int32
    assert spec.query_images.shape == (4, 3) and spec.query_images.dtype == tf.float32
    assert spec.query_labels.shape == (4,) and spec.query_labels.dtype == tf.int32
    assert ds.cardinality().numpy() == 7
    assert len(list(ds.as_numpy_iterator())) == 7
    endless = eval_dataset(pool, EVAL_SPEC, seed=0, stream=episodes.MONITOR_STREAM)
    assert endless.cardinality().numpy() == tf.data.INFINITE_CARDINALITY


def test_eval_tasks_follow_the_rules(pool):
    tasks = take(eval_dataset(pool, EVAL_SPEC, seed=1, stream=episodes.FINAL_EVAL_STREAM), 20)
    query_positions = set()
    for ep in tasks:
        classes, sup_idx = assert_task(pool, ep.support_images, ep.support_labels, 4, 2)
        np.testing.assert_array_equal(ep.query_labels, [0, 1, 2, 3])
        q_cls, q_idx = decode(ep.query_images)
        np.testing.assert_array_equal(q_cls, classes)      # one query per class, by label
        for j in range(4):
            c = classes[j]
            assert q_idx[j] not in set(sup_idx[j])          # query not in the support set
            assert 0 <= q_idx[j] < pool.counts[c]
            if pool.counts[c] == 3:                         # K + 1 = 3 = all of it
                assert sorted(list(sup_idx[j]) + [q_idx[j]]) == [0, 1, 2]
            query_positions.add(q_idx[j])
        assert ep.batches.shape == (5, 3)
        assert_passes(ep.batches, 8)
    assert len(query_positions) > 2  # the query is a random image of its class


def test_eval_seed_and_stream(pool):
    def run(seed, stream):
        return take(eval_dataset(pool, EVAL_SPEC, seed=seed, stream=stream, num_tasks=3), 3)

    a, b = run(2, 10), run(2, 10)
    for x, y in zip(a, b):
        for f in episodes.EvalEpisode._fields:
            np.testing.assert_array_equal(getattr(x, f), getattr(y, f))
    for other in (run(3, 10), run(2, 11)):
        assert not all(np.array_equal(x.support_images, z.support_images) for x, z in zip(a, other))
    # Finite and endless datasets of one stream agree.
    endless = take(eval_dataset(pool, EVAL_SPEC, seed=2, stream=10), 3)
    for x, y in zip(a, endless):
        np.testing.assert_array_equal(x.query_images, y.query_images)


def test_eval_with_replacement(pool):
    spec = TaskSpec(4, 2, batch_size=8, num_batches=3, replacement=True)
    (ep,) = take(eval_dataset(pool, spec, seed=0, stream=10, num_tasks=1), 1)
    for row in ep.batches:
        assert sorted(row) == list(range(8))


def test_eval_one_shot_batch_equals_support(pool):
    # 1-shot 5-way, eval-batch 5: every step uses the whole (reshuffled) support set.
    spec = TaskSpec(5, 1, batch_size=5, num_batches=4)
    (ep,) = take(eval_dataset(pool, spec, seed=0, stream=10, num_tasks=1), 1)
    for row in ep.batches:
        assert sorted(row) == list(range(5))
    assert len({tuple(r) for r in ep.batches}) > 1
