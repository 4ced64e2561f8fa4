"""Tests of `algorithms.inner_loop`: the inner steps on one task (`OneTask`)
and on a stack of tasks (`StackedTasks`), recording every step, the unrolled
form MAML differentiates, and the queries' logits after adaptation.

Inputs are continuous random values (no ties), and comparisons of two
implementations use SGD or a single Adam step (STYLE.md, testing numerics)."""

import glob
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from supervised_reptile import models
from supervised_reptile import weights as wmath
from supervised_reptile.algorithms import summed_cross_entropy
from supervised_reptile.algorithms.inner_loop import (InnerLoop, OneTask, StackedTasks,
                                                      query_logits)
from supervised_reptile.optimizers import SGD, Adam

N, K, BATCH, STEPS, QUERIES = 3, 2, 4, 3, 3


def _net(seed=0):
    return models.build_omniglot_model(N, seed=seed)


def _weights(net):
    return ([tf.identity(v) for v in net.trainable_variables],
            [tf.identity(v) for v in net.non_trainable_variables])


def _task(seed, steps=STEPS):
    """`(support images [N*K, 28, 28], labels, batches [steps, BATCH], queries [Q, 28, 28])`."""
    rng = np.random.default_rng(seed)
    return (tf.constant(rng.normal(size=(N * K, 28, 28)).astype(np.float32)),
            tf.constant(np.repeat(np.arange(N, dtype=np.int32), K)),
            tf.constant(rng.integers(0, N * K, (steps, BATCH)).astype(np.int32)),
            tf.constant(rng.normal(size=(QUERIES, 28, 28)).astype(np.float32)))


def _without_conv_biases(net, values):
    """The conv biases feed batch norm: no effect on the output, and they drift freely."""
    return [x for v, x in zip(net.trainable_variables, values)
            if not (v.path.startswith("conv2d") and v.path.endswith("bias"))]


# Adam's first step is nearly lr * sign(gradient): where a gradient is near
# epsilon's scale, float32 rounding moves the step by up to a few % of lr (1e-3; 4% and
# once 18% seen: the kernels reduce in another order per channel count).
@pytest.mark.parametrize("optimizer,steps,atol", [("sgd", STEPS, 2e-6), ("adam", 1, 5e-5)])
def test_stacked_tasks_adapt_as_each_task_alone(optimizer, steps, atol):
    nets = [_net(0), _net(1)]  # distinct starting weights per task
    tasks = [_task(10 + t, steps) for t in range(2)]
    opt = SGD(0.05) if optimizer == "sgd" else Adam(1e-3)
    opt.build(nets[0].trainable_variables)
    loop = InnerLoop(opt, summed_cross_entropy)
    one = OneTask(nets[0])
    alone = []
    for net, (images, labels, batches, _) in zip(nets, tasks):
        weights, frozen = _weights(net)
        adapted, _, state, loss, _ = loop.run(one, weights, frozen, opt.read_state(), images,
                                              labels, batches)
        alone.append((adapted, state, loss))
    starts = [_weights(net)[0] for net in nets]
    stacked = [tf.stack(ws) for ws in zip(*starts)]
    images, labels, batches, _ = (tf.stack(field) for field in zip(*tasks))
    adapted, _, state, loss, _ = loop.run(StackedTasks(nets[0], 2), stacked, _weights(nets[0])[1],
                                          wmath.broadcast(opt.read_state(), 2), images, labels,
                                          batches)
    assert [w.shape for w in adapted] == [w.shape for w in stacked]
    assert loss.shape == (2,)
    for t, (w_alone, s_alone, l_alone) in enumerate(alone):
        np.testing.assert_allclose(loss[t].numpy(), l_alone.numpy(), rtol=1e-5)
        pairs = list(zip(_without_conv_biases(nets[0], [w[t] for w in adapted]),
                         _without_conv_biases(nets[0], w_alone)))
        tol = atol
        if optimizer == "adam":
            # A weight whose gradient is at epsilon's scale may move by a good part
            # of lr (1e-3); a wrong gradient would move most weights by about lr.
            off = sum(int((~np.isclose(a.numpy(), b.numpy(), atol=atol, rtol=1e-4)).sum())
                      for a, b in pairs)
            assert off <= 3, off
            tol = 5e-4
        for a, b in pairs:
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=tol, rtol=1e-4)
        if optimizer == "adam":  # the step count is shared, the moments per task
            step, m, v = state
            assert float(step) == float(s_alone[0]) == steps
            for a, b in zip(_without_conv_biases(nets[0], [x[t] for x in m]),
                            _without_conv_biases(nets[0], s_alone[1])):
                np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4, rtol=1e-4)


def test_record_gives_every_step_from_before_the_first():
    net = _net()
    weights, frozen = _weights(net)
    images, labels, batches, queries = _task(0)
    one = OneTask(net)
    loop = InnerLoop(SGD(0.05), summed_cross_entropy)

    def record(w):
        return one.logits(w, frozen, queries)

    adapted, _, _, _, records = loop.run(one, weights, frozen, (), images, labels, batches,
                                         record=record)
    assert records.shape == (STEPS + 1, QUERIES, N) and records.dtype == tf.float32
    np.testing.assert_allclose(records[0].numpy(), net(queries, training=True).numpy(),
                               atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(records[-1].numpy(), record(adapted).numpy(), atol=1e-6, rtol=1e-6)
    # Row s is after s steps: the same as running only the first s batches.
    for s in range(1, STEPS):
        after_s, *_ = loop.run(one, weights, frozen, (), images, labels, batches[:s])
        np.testing.assert_allclose(records[s].numpy(), record(after_s).numpy(), atol=1e-5,
                                   rtol=1e-5)
    # Without `record` nothing is recorded; the adapted weights are the same.
    again, _, _, _, nothing = loop.run(one, weights, frozen, (), images, labels, batches)
    assert nothing is None
    for a, b in zip(again, adapted):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_record_on_stacked_tasks_has_a_task_axis():
    net = _net()
    weights, frozen = _weights(net)
    tasks = [_task(t) for t in range(2)]
    images, labels, batches, queries = (tf.stack(field) for field in zip(*tasks))
    stacked = StackedTasks(net, 2)
    loop = InnerLoop(SGD(0.05), summed_cross_entropy)
    _, _, _, _, records = loop.run(stacked, wmath.broadcast(weights, 2), frozen, (), images,
                                   labels, batches,
                                   record=lambda w: stacked.logits(w, frozen, queries))
    assert records.shape == (STEPS + 1, 2, QUERIES, N)
    for t in range(2):
        np.testing.assert_allclose(records[0, t].numpy(),
                                   net(tasks[t][3], training=True).numpy(), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("weight_decay", [1.0, 0.9])
def test_unrolled_equals_run_for_sgd(weight_decay):
    net = _net()
    weights, frozen = _weights(net)
    images, labels, batches, _ = _task(3)
    one = OneTask(net)
    loop = InnerLoop(SGD(0.05), summed_cross_entropy, weight_decay)
    ran, before_last, _, mean_loss, _ = loop.run(one, weights, frozen, (), images, labels,
                                                 batches)
    unrolled, state, first_loss = loop.unrolled(one, weights, frozen, (), images, labels, batches)
    assert state == ()
    for a, b in zip(unrolled, ran):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=1e-6)
    # The loss of the first step: the meta-weights (after that step's decay) on the first batch.
    first = summed_cross_entropy(tf.gather(labels, batches[0]), one.logits(
        wmath.scale(weights, weight_decay), frozen, tf.gather(images, batches[0])))
    np.testing.assert_allclose(first_loss.numpy(), first.numpy(), rtol=1e-5)
    assert np.isfinite(mean_loss.numpy())
    # `before_last` is the weights before the last step (FOML's update is from there).
    two, *_ = loop.run(one, weights, frozen, (), images, labels, batches[:-1])
    for a, b in zip(before_last, two):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=1e-6)
    # No step: the meta-weights themselves, and a zero loss.
    same, _, none = loop.unrolled(one, weights, frozen, (), images, labels, batches[:0])
    assert float(none) == 0.0
    for a, b in zip(same, weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_run_with_a_tail_ends_on_it():
    """FOML's tail: every row of `batches`, then the tail as the final batch."""
    net = _net()
    weights, frozen = _weights(net)
    images, labels, batches, _ = _task(4)
    tail = tf.constant([0, 2, 4, 5], tf.int32)  # N * tail_shots indices: here BATCH of them
    one = OneTask(net)
    loop = InnerLoop(SGD(0.05), summed_cross_entropy)
    with_tail, *_ = loop.run(one, weights, frozen, (), images, labels, batches, tail)
    as_rows, *_ = loop.run(one, weights, frozen, (), images, labels,
                           tf.concat([batches, tail[None]], 0))
    for a, b in zip(with_tail, as_rows):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("weight_decay", [0.0, -0.1, 1.5, float("nan")])
def test_weight_decay_outside_0_1_is_refused(weight_decay):
    with pytest.raises(ValueError, match=f"weight_decay {weight_decay} must be in \\(0, 1\\]"):
        InnerLoop(SGD(0.1), summed_cross_entropy, weight_decay)


def test_weight_decay_scales_the_weights_before_each_step():
    net = _net()
    weights, frozen = _weights(net)
    images, labels, batches, _ = _task(5)
    tiny = 1e-30  # a learning rate that moves nothing: only the decay remains
    loop = InnerLoop(SGD(tiny), summed_cross_entropy, weight_decay=0.5)
    adapted, *_ = loop.run(OneTask(net), weights, frozen, (), images, labels, batches)
    for a, w in zip(adapted, weights):
        np.testing.assert_allclose(a.numpy(), w.numpy() * 0.5 ** STEPS, rtol=1e-6, atol=1e-30)


def test_non_transductive_queries_each_join_the_support_set():
    net = _net()
    weights, frozen = _weights(net)
    support, _, _, queries = _task(6)
    got = query_logits(OneTask(net), weights, frozen, support, queries, transductive=False)
    assert got.shape == (QUERIES, N)
    for q in range(QUERIES):
        alone = net(tf.concat([support, queries[q:q + 1]], 0), training=True)[-1]
        np.testing.assert_allclose(got[q].numpy(), alone.numpy(), atol=1e-5, rtol=1e-5)
    # Batch norm sees the support set: not the same as the queries in one batch.
    transductive = query_logits(OneTask(net), weights, frozen, support, queries, True)
    np.testing.assert_allclose(transductive.numpy(), net(queries, training=True).numpy(),
                               atol=1e-6, rtol=1e-6)
    assert not np.allclose(transductive.numpy(), got.numpy(), atol=1e-3)

    # A dynamic query count (the SavedModel's signatures) goes through map_fn.
    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32)])
    def dynamic(q):
        return query_logits(OneTask(net), weights, frozen, support, q, transductive=False)

    np.testing.assert_allclose(dynamic(queries).numpy(), got.numpy(), atol=1e-5, rtol=1e-5)


def test_non_transductive_queries_trace_the_forward_pass_once():
    # Tracing one pass per query took seconds of start-up with 20 queries.
    net = _net()
    weights, frozen = _weights(net)
    support, _, _, queries = _task(6)

    class Counting(OneTask):
        traced = 0

        def logits(self, weights, frozen, images):
            Counting.traced += 1
            return super().logits(weights, frozen, images)

    compiled = tf.function(lambda s, q: query_logits(Counting(net), weights, frozen, s, q, False))
    got = compiled(support, queries)
    assert Counting.traced == 1
    np.testing.assert_allclose(
        got.numpy(), query_logits(OneTask(net), weights, frozen, support, queries, False).numpy(),
        atol=1e-6, rtol=1e-6)


def test_non_transductive_stacked_equals_each_task():
    net = _net()
    weights, frozen = _weights(net)
    tasks = [_task(7 + t) for t in range(2)]
    support = tf.stack([t[0] for t in tasks])
    queries = tf.stack([t[3] for t in tasks])
    got = query_logits(StackedTasks(net, 2), wmath.broadcast(weights, 2), frozen, support,
                       queries, transductive=False)
    assert got.shape == (2, QUERIES, N)
    for t in range(2):
        alone = query_logits(OneTask(net), weights, frozen, support[t], queries[t], False)
        np.testing.assert_allclose(got[t].numpy(), alone.numpy(), atol=2e-5, rtol=1e-5)


def _op_types_of_one_call(fn, *args):
    """Op types that ran in one call of the compiled `fn`, from TensorFlow's profiler."""
    fn(*args)
    logdir = tempfile.mkdtemp(prefix="inner_loop_profile_")
    tf.profiler.experimental.start(logdir)
    fn(*args)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    names = {m.name for plane in space.planes for m in plane.event_metadata.values()}
    return {n.rsplit(":", 1)[1] for n in names if ":" in n}


def test_pooling_gradients_in_the_loop_run_on_onednn():
    # Eigen's MaxPoolGrad is single-threaded and ~10x slower; inlined in the
    # loop's body, 1-3 of the 4 were Eigen's in most processes.
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        pytest.skip("oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0)")
    net = models.build_miniimagenet_model(N, image_shape=(32, 32, 3))
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((N * K, 32, 32, 3)).astype(np.float32))
    labels = tf.constant(np.repeat(np.arange(N, dtype=np.int32), K))
    batches = tf.constant(rng.integers(0, N * K, (STEPS, BATCH)).astype(np.int32))
    weights, frozen = _weights(net)
    opt = Adam(1e-3)
    opt.build(net.trainable_variables)
    loop = InnerLoop(opt, summed_cross_entropy)
    run = tf.function(lambda: loop.run(OneTask(net), weights, frozen, opt.read_state(),
                                       images, labels, batches)[0])
    ops = _op_types_of_one_call(run)
    if not any(op.startswith("_MklNative") for op in ops):
        pytest.skip("this TensorFlow build runs no oneDNN kernels")
    assert "_MklNativeMaxPoolGrad" in ops
    assert "MaxPoolGrad" not in ops, sorted(ops)
