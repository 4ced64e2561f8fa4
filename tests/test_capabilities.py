"""Every algorithm in every mode, through every output: the README's capability matrix.

One fresh process per mode (sequential, `--parallel-tasks`, `--distribute
mirrored` on 2 logical CPUs); in each, every algorithm (Reptile, FOML, MAML,
first-order MAML) trains a few meta-iterations on tiny generated Omniglot
with monitoring, a final evaluation many tasks at once, `--eval-results` and
`--export`, on a narrow two-block version of the Omniglot model (the same
layer kinds, so the same code paths, fast to trace). The script then checks,
per algorithm:
  * the results file's per-task counts equal a one-by-one evaluation of the
    restored checkpoint (MAML: at every inner step, its protocol);
  * the SavedModel's adapt_and_predict runs this algorithm's own inner loop
    (its logits equal the in-process adaptation on the same batches);
  * `predict` classifies image folders with that SavedModel.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, make_omniglot

_SCRIPT = textwrap.dedent("""
    import json, os, shutil, sys
    import numpy as np, tensorflow as tf
    from supervised_reptile import build, checkpoints, episodes, experiment, flags, prediction
    from supervised_reptile.data import omniglot
    from supervised_reptile.evaluate import evaluate

    mode, data, root = sys.argv[1:4]
    sys.path.insert(0, os.path.join(os.environ["PYTHONPATH"], "tests"))
    from conftest import tiny_conv_model
    from supervised_reptile import models
    models.BUILDERS["omniglot"] = tiny_conv_model  # the same layer kinds, fast to trace
    MODES = {"sequential": [], "at-once": ["--parallel-tasks"],
             "mirrored": ["--distribute", "mirrored", "--cpu-devices", "2"]}
    ALGORITHMS = {"reptile": [], "foml": ["--foml"], "maml": ["--maml"],
                  "maml-first-order": ["--maml", "--maml-first-order"]}
    TINY = ["--train-characters", "10", "--classes", "3", "--shots", "1", "--train-shots", "2",
            "--inner-batch", "3", "--inner-iters", "2", "--meta-batch", "2", "--meta-iters", "2",
            "--eval-interval", "1", "--eval-samples", "3", "--eval-iters", "2",
            "--eval-tasks-at-once", "2", "--maml-inner-lr", "0.1", "--progress", "off"]

    # Folders for predict: one drawing per class as support, another as query.
    chars = omniglot.list_characters(data)[-3:]
    for c in chars:
        files = sorted(os.listdir(c))
        os.makedirs(os.path.join(root, "support", os.path.basename(c)), exist_ok=True)
        shutil.copy(os.path.join(c, files[0]), os.path.join(root, "support", os.path.basename(c)))
        os.makedirs(os.path.join(root, "query"), exist_ok=True)
        shutil.copy(os.path.join(c, files[-1]), os.path.join(root, "query", files[-1]))

    for name, extra in ALGORITHMS.items():
        out = os.path.join(root, name)
        config = flags.parse_args(TINY + MODES[mode] + extra + [
            "--data-dir", data, "--checkpoint", os.path.join(out, "ck"),
            "--eval-results", os.path.join(out, "results.json"),
            "--export", os.path.join(out, "saved")], "omniglot")
        lines = []
        experiment.run(config, log_fn=lines.append)
        assert [l.split(":")[0] for l in lines if l.startswith("batch")] == ["batch 0", "batch 1"]
        every_step = config.meta.algorithm == "maml"

        # Final evaluation: the run's stacked (or distributed) one equals one by one.
        algorithm = build.build_algorithm(config)
        checkpoints.RunCheckpoint(config.run.checkpoint, algorithm.model,
                                  algorithm.optimizer).restore(lambda _: None)
        results = json.load(open(os.path.join(out, "results.json")))["splits"]
        samplers = build.load_samplers(config)
        _, spec = build.task_specs(config)
        for i, (split, sampler) in enumerate(samplers.items()):
            if split != "test":
                continue  # one split suffices to compare the two paths
            tasks = episodes.eval_dataset(sampler, spec, config.run.seed,
                                          episodes.FINAL_EVAL_STREAM + i, 3)
            counts = evaluate(algorithm, tasks, 3, tasks_at_once=1, every_step=every_step)
            assert counts[:, -1].tolist() == results[split]["correct"], (split, counts, results)
            assert every_step == ("correct_per_step" in results[split])
            if every_step:
                assert counts.tolist() == results[split]["correct_per_step"]
                assert counts.shape == (3, config.eval.eval_iters + 1)

        # Export: the SavedModel adapts with this algorithm's inner loop.
        task = next(iter(tasks))
        saved = tf.saved_model.load(os.path.join(out, "saved"))
        got = saved.signatures["adapt_and_predict_with_batches"](
            support_images=task.support_images, support_labels=task.support_labels,
            query_images=task.query_images, batches=task.batches)["logits"].numpy()
        want = algorithm.adapt_and_predict(task).numpy()[-1]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        unadapted = algorithm.model(task.query_images, training=True).numpy()
        assert not np.allclose(got, unadapted, atol=1e-4)  # the inner loop ran

        labels = prediction.predict(os.path.join(out, "saved"), os.path.join(root, "support"),
                                 os.path.join(root, "query"))
        assert len(labels) == 3 and {l for _, l, _ in labels} <= {os.path.basename(c) for c in chars}
        print(mode, name, "ok", flush=True)
""")


@pytest.fixture(scope="module")
def tiny_omniglot(tmp_path_factory):
    return make_omniglot(tmp_path_factory.mktemp("matrix") / "omni", alphabets=3, characters=5)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sequential", "at-once", "mirrored"])
def test_every_algorithm_trains_evaluates_exports_and_predicts(mode, tiny_omniglot, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, mode, tiny_omniglot, str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    for name in ("reptile", "foml", "maml", "maml-first-order"):
        assert f"{mode} {name} ok" in proc.stdout
