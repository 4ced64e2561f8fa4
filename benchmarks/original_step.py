"""The original's inner step, timed and broken down per op: what its run spends in kernels.

Runs under the original's venv and imports its model classes from the peer
checkout (nothing of it is copied here):

  PEER_PY=$(../shared/peer/setup.sh)
  $PEER_PY benchmarks/original_step.py --dataset omniglot      # then --dataset miniimagenet
  python benchmarks/profile.py --preset o55 --what meta         # this project's side

One inner step (`minimize_op` on a batch of random inputs in the network's
shape, in the original's session with its default thread pools): median and
minimum wall time over `--steps` runs, then the op time per op type summed
from `--traced` runs with a full `RunMetadata` trace. Next to `profile.py`'s
figures for this project, this shows which kernels both sides run and how
long each takes: a paper meta-iteration is `meta_batch x inner_iters` such
steps (25 for Omniglot 5-way, 40 for Mini-ImageNet), plus the original's
Python between them.
"""

import argparse
import collections
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = {"omniglot": (28, 28), "miniimagenet": (84, 84, 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(SHAPES), default="omniglot")
    parser.add_argument("--batch", type=int, default=10, help="the paper's inner batch")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--traced", type=int, default=10)
    parser.add_argument("--peer", default=os.path.join(HERE, "..", "..", "shared", "peer"))
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.path.insert(0, os.path.join(os.path.abspath(args.peer), "original-tf1"))
    import numpy as np
    import tensorflow.compat.v1 as tf
    tf.disable_v2_behavior()
    from supervised_reptile import models  # the original's package, from the peer checkout
    build = models.OmniglotModel if args.dataset == "omniglot" else models.MiniImageNetModel
    model = build(5, learning_rate=0.001)
    rng = np.random.default_rng(0)
    feed = {model.input_ph: rng.random((args.batch,) + SHAPES[args.dataset]).astype(np.float32),
            model.label_ph: np.arange(args.batch) % 5}
    with tf.Session() as sess:
        sess.run(tf.global_variables_initializer())
        for _ in range(5):
            sess.run(model.minimize_op, feed)
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            sess.run(model.minimize_op, feed)
            times.append((time.perf_counter() - start) * 1000)
        ops = collections.Counter()
        options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE)
        for _ in range(args.traced):
            metadata = tf.RunMetadata()
            sess.run(model.minimize_op, feed, options=options, run_metadata=metadata)
            for device in metadata.step_stats.dev_stats:
                for node in device.node_stats:
                    # timeline_label reads "name = OpType(inputs)"
                    label = node.timeline_label
                    kind = label.split("=", 1)[1].split("(")[0].strip() if "=" in label else "?"
                    ops[kind] += node.op_end_rel_micros / 1000 / args.traced
    total = sum(ops.values())
    print(f"original {args.dataset} inner step (batch {args.batch}): median "
          f"{statistics.median(times):.2f} ms, min {min(times):.2f} ms; op time per traced step "
          f"{total:.2f} ms")
    for kind, ms in ops.most_common(args.top):
        print(f"{kind:45s} {ms:8.3f} ms {100 * ms / total:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
