"""FLOPs of a meta-iteration and of an evaluation task, and the machine's FLOP rate.

Counting rule (analytic, from the model's layer shapes): only the
convolutions and the dense layer count, 2 FLOPs per multiply-add; batch norm,
ReLU, pooling, the loss and the optimizer are elementwise (well under 1% of
the total here, and bound by memory, not arithmetic). One inner step on `b`
examples costs the forward pass, the weight gradients (the same again) and
the input gradients of every layer but the first: about 3x the forward pass.

`graph_flops` cross-checks this with TensorFlow's own graph cost statistics
(`tf.compat.v1.profiler`, which also counts the elementwise ops).
"""

import time

import keras
import tensorflow as tf


def forward_flops_per_layer(model: keras.Model) -> list[tuple[str, int]]:
    """`(layer name, forward FLOPs for one example)` of every conv and dense layer."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            out.append((layer.name, 2 * h * w * c_out * kh * kw * c_in))
        elif isinstance(layer, keras.layers.Dense):
            d_in, d_out = layer.kernel.shape
            out.append((layer.name, 2 * d_in * d_out))
    return out


def step_flops(model: keras.Model, batch: int) -> int:
    """FLOPs of one inner step (forward + backward) on `batch` examples."""
    layers = forward_flops_per_layer(model)
    forward = sum(f for _, f in layers)
    return batch * (3 * forward - layers[0][1])  # no input gradient for the first layer


def forward_flops(model: keras.Model, batch: int) -> int:
    return batch * sum(f for _, f in forward_flops_per_layer(model))


def meta_iteration_flops(model: keras.Model, meta_batch: int, inner_iters: int,
                         inner_batch: int) -> int:
    """FLOPs of one meta-iteration: `meta_batch` tasks x `inner_iters` steps."""
    return meta_batch * inner_iters * step_flops(model, inner_batch)


def eval_task_flops(model: keras.Model, eval_iters: int, eval_batch: int, classes: int,
                    shots: int, transductive: bool) -> int:
    """FLOPs of one evaluation task: fine-tuning, then predicting the N queries
    (in one batch, or each with the whole support set of N*K images)."""
    predict = (forward_flops(model, classes) if transductive
               else classes * forward_flops(model, classes * shots + 1))
    return eval_iters * step_flops(model, eval_batch) + predict


def graph_flops(fn, *args) -> int:
    """TensorFlow's FLOP count of the graph of `tf.function` `fn` on `args`
    (ops inside a loop body are counted once)."""
    graph = fn.get_concrete_function(*args).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=opts).total_float_ops


def matmul_gflops(size: int, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a `size` x `size` matrix product on the default device."""
    a = tf.random.normal([size, size], seed=1)
    b = tf.random.normal([size, size], seed=2)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    product(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9
