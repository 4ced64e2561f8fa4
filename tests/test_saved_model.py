"""SavedModel round trip: a fresh process that never imports supervised_reptile loads the
export and must predict what in-process evaluation predicts on the same episodes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from supervised_reptile import build, checkpoints, cli, config as config_lib, episodes, saved_model

# Runs in a fresh interpreter: plain TensorFlow and NumPy only.
_LOADER = r"""
import sys
import numpy as np
import tensorflow as tf
model_dir, inp, out = sys.argv[1:]
m = tf.saved_model.load(model_dir)
d = dict(np.load(inp))
res = {}
for i in range(int(d["count"])):
    task = dict(support_images=d[f"s{i}"], support_labels=d[f"y{i}"], query_images=d[f"q{i}"])
    res[f"batches{i}"] = m.signatures["adapt_and_predict_with_batches"](
        batches=d[f"b{i}"], **task)["logits"].numpy()
    res[f"fixed{i}"] = m.signatures["adapt_and_predict"](**task)["logits"].numpy()
    res[f"serve{i}"] = m.signatures["serve"](images=d[f"q{i}"])["logits"].numpy()
assert "supervised_reptile" not in sys.modules
np.savez(out, **res)
"""


@pytest.fixture(scope="module")
def trained(tiny_run):
    config = config_lib.from_dict(config_lib.read(tiny_run["checkpoint"]),
                                  checkpoint=tiny_run["checkpoint"])
    algorithm = build.build_algorithm(config)
    checkpoints.RunCheckpoint(config.run.checkpoint, algorithm.model, algorithm.optimizer).restore()
    return config, algorithm, build.load_samplers(config)


def _tasks(config, sampler):
    """Held-out 5-way 1-shot tasks (as evaluated) and a 3-way 2-shot one."""
    _, spec = build.task_specs(config)
    tasks = list(episodes.eval_dataset(sampler, spec, config.run.seed, episodes.FINAL_EVAL_STREAM + 1,
                                       3))
    small = episodes.TaskSpec(3, 2, config.eval.eval_batch, config.eval.eval_iters)
    return tasks + list(episodes.eval_dataset(sampler, small, config.run.seed, 77, 1))


def test_exported_model_predicts_as_the_in_process_evaluation(trained, tiny_run, tmp_path):
    config, algorithm, samplers = trained
    tasks = _tasks(config, samplers["test"])
    arrays = {"count": len(tasks)}
    for i, t in enumerate(tasks):
        arrays.update({f"s{i}": t.support_images, f"y{i}": t.support_labels, f"b{i}": t.batches,
                       f"q{i}": t.query_images})
    np.savez(tmp_path / "in.npz", **arrays)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    done = subprocess.run([sys.executable, "-c", _LOADER, tiny_run["export"],
                           str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = np.load(tmp_path / "out.npz")
    key = tf.constant([config.run.seed, saved_model.EXPORT_STREAM], tf.int64)
    for i, t in enumerate(tasks):
        n = int(t.query_labels.shape[0])
        # Same episode and batch order: the same predictions as the evaluation.
        if n == config.task.classes:
            np.testing.assert_array_equal(out[f"batches{i}"].argmax(-1),
                                          _predictions(algorithm, t))
        expected = _query_logits(algorithm, t)
        assert out[f"batches{i}"].shape == (n, n)
        # The SavedModel's shapes are dynamic, so oneDNN's fused batch norm may
        # reduce in another order than the in-process graph: rounding, which
        # 50 Adam steps carry to about 1e-5 in the logits.
        np.testing.assert_allclose(out[f"batches{i}"], expected[:, :n], rtol=1e-4, atol=1e-4)
        # The fixed-seed signature draws its batches with the episodes' rule from its key.
        if n == config.task.classes:
            fixed = episodes.mini_batches(key, t.support_labels.shape[0], config.eval.eval_batch,
                                        config.eval.eval_iters, config.task.replacement)
            np.testing.assert_array_equal(out[f"fixed{i}"].argmax(-1),
                                          _predictions(algorithm, t._replace(batches=fixed)))
        # One forward pass: the fused batch norm's reduction order alone (1e-5 seen).
        np.testing.assert_allclose(out[f"serve{i}"],
                                   algorithm.model(t.query_images, training=True),
                                   rtol=1e-4, atol=1e-4)


def _predictions(algorithm, task):
    return algorithm.adapt_and_predict(task).numpy()[-1].argmax(-1)


_DYNAMIC = [tf.TensorSpec([None, 28, 28]), tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, 28, 28])]


def _query_logits(algorithm, t):
    """In graph mode with unknown sizes, as the SavedModel runs it. (A graph traced for
    the episode's static shapes may pick other kernels: the last bits differ, Adam's
    sign-like first steps amplify that to about 1e-3 in the logits; the argmax, which
    the evaluation uses, agreed on every task here.)"""
    fn = tf.function(lambda *a: _graph_query_logits(algorithm, *a), input_signature=_DYNAMIC)
    return fn(t.support_images, t.support_labels, t.batches, t.query_images)


def _graph_query_logits(algorithm, support_images, support_labels, batches, query_images):
    weights, frozen = algorithm.read_weights()
    return algorithm.logits_after_adaptation(weights, frozen, algorithm.inner_state(),
                                             support_images, support_labels, batches,
                                             query_images)


@pytest.mark.parametrize("replacement", [False, True])
def test_dynamic_mini_batches_equal_the_episodes_rule(replacement):
    key = tf.constant([3, 4], tf.int64)
    np.testing.assert_array_equal(
        episodes.mini_batches(key, tf.constant(10), 4, 7, replacement),
        episodes.mini_batches(key, 10, 4, 7, replacement))


@pytest.mark.slow
def test_export_command_writes_the_same_model(trained, tiny_run, tmp_path):
    assert cli.export_main(["--checkpoint", tiny_run["checkpoint"],
                            "--export", str(tmp_path / "x")]) == 0
    meta = json.loads((tmp_path / "x" / saved_model.METADATA_FILE).read_text())
    assert meta["num_classes"] == 5 and meta["image_shape"] == [28, 28]
    images = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    a = tf.saved_model.load(str(tmp_path / "x")).signatures["serve"](images=images)["logits"]
    b = tf.saved_model.load(tiny_run["export"]).signatures["serve"](images=images)["logits"]
    np.testing.assert_array_equal(a, b)
    assert cli.export_main(["--checkpoint", str(tmp_path / "nothing"),
                            "--export", str(tmp_path / "y")]) == 2
