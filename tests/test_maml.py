"""MAML: the meta-gradient against finite differences, one step against a
closed form, state rules, and the run scripts with --maml."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from supervised_reptile import episodes as ep
from supervised_reptile.algorithms import MAML, maml_cross_entropy
from supervised_reptile.evaluate import evaluate

ALPHA = 0.3


def _tiny_classifier(dtype="float64"):
    """3 -> 4 (tanh) -> 2 logits: smooth, so second-order terms are large."""
    inputs = keras.Input((3,), dtype=dtype)
    h = keras.layers.Dense(4, activation="tanh", dtype=dtype,
                           kernel_initializer=keras.initializers.RandomNormal(0, 1, seed=1),
                           bias_initializer=keras.initializers.RandomNormal(0, 0.5, seed=2))(inputs)
    out = keras.layers.Dense(2, dtype=dtype,
                             kernel_initializer=keras.initializers.RandomNormal(0, 1, seed=3))(h)
    return keras.Model(inputs, out)


def _tasks(num_tasks=2, support=4, query=3, steps=2, seed=0):
    """A meta-batch of classification tasks: support rows first, then the query rows."""
    rng = np.random.default_rng(seed)
    n = support + query
    images = rng.normal(size=(num_tasks, n, 3))
    labels = rng.integers(0, 2, (num_tasks, n)).astype(np.int32)
    batches = np.tile(np.arange(support, dtype=np.int32), (num_tasks, steps, 1))
    tail = np.tile(np.arange(support, n, dtype=np.int32), (num_tasks, 1))
    return ep.TrainEpisode(tf.constant(images), tf.constant(labels), tf.constant(batches),
                           tf.constant(tail))


def _forward(params, x):
    w1, b1, w2, b2 = params
    return tf.matmul(tf.tanh(tf.matmul(x, w1) + b1), w2) + b2


def _adapted(params, task, steps):
    """Hand-written inner loop (first-order gradients only are needed here)."""
    x, y = task.images[:4], task.labels[:4]
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(params)
            loss = maml_cross_entropy(y, _forward(params, x))
        params = [p - ALPHA * g for p, g in zip(params, tape.gradient(loss, params))]
    return params


def _meta_objective(params, tasks, steps):
    total = 0.0
    for m in range(tasks.images.shape[0]):
        task = ep.TrainEpisode(*(t[m] for t in tasks))
        fast = _adapted(params, task, steps)
        total += float(maml_cross_entropy(task.labels[4:], _forward(fast, task.images[4:])))
    return total / tasks.images.shape[0]


def _finite_difference(params, tasks, steps, h=1e-6):
    grads = []
    for i, p in enumerate(params):
        flat = p.numpy().ravel()
        g = np.zeros_like(flat)
        for j in range(flat.size):
            shifted = []
            for sign in (1, -1):
                q = flat.copy()
                q[j] += sign * h
                trial = list(params)
                trial[i] = tf.constant(q.reshape(p.shape))
                shifted.append(_meta_objective(trial, tasks, steps))
            g[j] = (shifted[0] - shifted[1]) / (2 * h)
        grads.append(g.reshape(p.shape))
    return grads


def _first_order_reference(params, tasks, steps):
    """FOMAML: the query-loss gradient at the adapted weights, averaged over tasks."""
    total = [np.zeros(p.shape) for p in params]
    for m in range(tasks.images.shape[0]):
        task = ep.TrainEpisode(*(t[m] for t in tasks))
        fast = _adapted(params, task, steps)
        with tf.GradientTape() as tape:
            tape.watch(fast)
            loss = maml_cross_entropy(task.labels[4:], _forward(fast, task.images[4:]))
        total = [t + g.numpy() for t, g in zip(total, tape.gradient(loss, fast))]
    return [t / tasks.images.shape[0] for t in total]


def test_meta_gradient_matches_finite_differences_second_and_first_order():
    tasks = _tasks(steps=2)
    model = _tiny_classifier()
    params = [tf.identity(v) for v in model.trainable_variables]
    numeric = _finite_difference(params, tasks, steps=2)
    # Compiled, as meta_step runs it (graph-mode while_loop around the tapes).
    exact, _ = tf.function(MAML(model, ALPHA).meta_gradients)(tasks)
    first, _ = tf.function(MAML(model, ALPHA, first_order=True).meta_gradients)(tasks)
    for e, n in zip(exact, numeric):
        np.testing.assert_allclose(e.numpy(), n, rtol=1e-6, atol=1e-8)
    for f, r in zip(first, _first_order_reference(params, tasks, steps=2)):
        np.testing.assert_allclose(f.numpy(), r, rtol=1e-10, atol=1e-12)
    # The second-order terms matter here: first order misses the true gradient
    # by far more than the finite-difference error, in every layer.
    for f, n in zip(first, numeric):
        assert np.max(np.abs(f.numpy() - n)) > 1e-3


def test_zero_inner_steps_is_plain_gradient_and_orders_agree():
    """With no inner step the adapted weights are the meta-weights: both orders
    give the ordinary gradient of the query loss."""
    tasks = _tasks(steps=0)
    model = _tiny_classifier()
    exact, _ = MAML(model, ALPHA).meta_gradients(tasks)
    first, _ = MAML(model, ALPHA, first_order=True).meta_gradients(tasks)
    for e, f in zip(exact, first):
        np.testing.assert_allclose(e.numpy(), f.numpy(), rtol=1e-12)


def _linear_reference(w, b, xs, ys, xq, yq, alpha):
    """One-step MAML meta-gradient of a linear model under MSE, in closed form.

    L(w, b) = mean((X w + b - y)^2); the adapted point is (w', b') = (w, b) -
    alpha * grad L_s; d(w', b')/d(w, b) = I - alpha * H_s with the constant
    Hessian H_s of the support loss, so the meta-gradient is
    (I - alpha H_s) grad L_q(w', b')."""
    def aug(x):
        return np.hstack([x, np.ones((len(x), 1))])

    theta = np.append(w, b)
    a_s, a_q = aug(xs), aug(xq)
    grad_s = 2 / len(xs) * a_s.T @ (a_s @ theta - ys)
    hess_s = 2 / len(xs) * a_s.T @ a_s
    fast = theta - alpha * grad_s
    grad_q = 2 / len(xq) * a_q.T @ (a_q @ fast - yq)
    return (np.eye(len(theta)) - alpha * hess_s) @ grad_q


def _mse(labels, outputs):
    return tf.reduce_mean(tf.square(outputs[:, 0] - labels))


def test_one_step_meta_update_equals_closed_form_with_adam():
    rng = np.random.default_rng(3)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(
        1, kernel_initializer=keras.initializers.RandomNormal(0, 1, seed=4),
        bias_initializer="ones")(inputs))
    w0, b0 = (v.numpy().astype(np.float64) for v in model.trainable_variables)
    x = rng.normal(size=(2, 9, 3)).astype(np.float32)
    y = rng.normal(size=(2, 9)).astype(np.float32)
    batches = np.tile(np.arange(5, dtype=np.int32), (2, 1, 1))
    tail = np.tile(np.arange(5, 9, dtype=np.int32), (2, 1))
    tasks = ep.TrainEpisode(*map(tf.constant, (x, y, batches, tail)))
    maml = MAML(model, inner_lr=0.05, meta_lr=0.01, loss_fn=_mse)
    ref = np.mean([_linear_reference(w0[:, 0], b0[0], x[m, :5], y[m, :5], x[m, 5:], y[m, 5:], 0.05)
                   for m in range(2)], axis=0)
    grads, _ = maml.meta_gradients(tasks)
    got = np.append(grads[0].numpy()[:, 0], grads[1].numpy())
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)
    assert np.all(np.abs(ref) > 1e-2)  # so Adam's first step below is ~ -lr * sign
    maml.meta_step(tasks, meta_step_size=123.0)  # ignored by MAML
    # Adam's first step with TF1's bias correction: -lr * g / (|g| + eps).
    expected = np.append(w0[:, 0], b0) - 0.01 * ref / (np.abs(ref) + 1e-8)
    new = np.append(model.trainable_variables[0].numpy()[:, 0],
                    model.trainable_variables[1].numpy())
    np.testing.assert_allclose(new, expected, atol=2e-6)
    assert float(maml.optimizer.step.numpy()) == 1.0


def _omniglot_tasks(seed=0):
    from supervised_reptile.data.class_pool import ClassPool
    rng = np.random.default_rng(seed)
    images = (rng.random((8, 6, 28, 28)) < 0.9).astype(np.uint8) * 255
    return ClassPool(images, np.full(8, 6, np.int32), tuple(map(str, range(8))))


def test_second_order_on_the_omniglot_model_differs_from_first_order():
    """The conv/BN model is twice differentiable through stateless_call."""
    from supervised_reptile.models import build_omniglot_model
    pool = _omniglot_tasks()
    spec = ep.TaskSpec(3, 3, 3 * 2, 3, tail_shots=1)
    tasks = next(iter(ep.train_dataset(pool, spec, seed=0, meta_batch=2)))
    model = build_omniglot_model(3, seed=0)
    exact, m1 = MAML(model, 0.4).meta_gradients(tasks)
    first, m2 = MAML(model, 0.4, first_order=True).meta_gradients(tasks)
    np.testing.assert_allclose(float(m1["query_loss"]), float(m2["query_loss"]), rtol=1e-5)
    diff = max(float(tf.reduce_max(tf.abs(e - f))) for e, f in zip(exact, first))
    scale = max(float(tf.reduce_max(tf.abs(e))) for e in exact)
    assert diff > 1e-3 * scale


@pytest.mark.slow
def test_evaluation_changes_no_state_and_predicts_per_step():
    from supervised_reptile.models import build_omniglot_model
    pool = _omniglot_tasks(1)
    spec = ep.TaskSpec(3, 2, 6, 3)
    data = ep.eval_dataset(pool, spec, seed=0, stream=ep.FINAL_EVAL_STREAM, num_tasks=3)
    maml = MAML(build_omniglot_model(3, seed=0), 0.4)
    before = [v.numpy() for v in maml.model.variables + maml.optimizer.state_variables]
    counts = evaluate(maml, data, 3, tasks_at_once=1, every_step=True)
    assert counts.shape == (3, 4) and np.all((counts >= 0) & (counts <= 3))
    np.testing.assert_array_equal(evaluate(maml, data, 3, tasks_at_once=3, every_step=True),
                                  counts)
    episode = next(iter(data))
    per_step = maml.adapt_and_predict(episode, every_step=True).numpy()
    np.testing.assert_array_equal(maml.adapt_and_predict(episode).numpy()[0], per_step[-1])
    after = [v.numpy() for v in maml.model.variables + maml.optimizer.state_variables]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    # Row 0 is the meta-model itself (a Keras call in training mode, which
    # moves batch norm's unused averages: so after the state check).
    logits0 = maml.model(tf.concat([episode.support_images, episode.query_images[:1]], 0),
                         training=True).numpy()[-1]
    np.testing.assert_allclose(per_step[0, 0], logits0, atol=1e-5)


def test_needs_a_query_set_and_a_positive_step():
    with pytest.raises(ValueError, match="inner_lr -1"):
        MAML(_tiny_classifier(), -1)
    tasks = _tasks()
    tasks = tasks._replace(tail=tf.zeros([2, 0], tf.int32))
    with pytest.raises(ValueError, match="query set"):
        MAML(_tiny_classifier(), 0.1).meta_gradients(tasks)


# ---------------------------------------------------------------- flags, presets, scripts

def test_conflicting_flags_are_refused():
    from supervised_reptile import validate
    from supervised_reptile.config import Config
    for extra, match in ((dict(sgd=True), "--sgd cannot"),
                         (dict(foml_tail=2), "--foml-tail 2 cannot"),
                         (dict(weight_decay=0.5), "--weight-decay 0.5 cannot"),
                         (dict(maml_query_shots=-1), "--maml-query-shots -1"),
                         (dict(meta_lr=0.0), "--meta-lr 0.0")):
        with pytest.raises(ValueError, match=match):
            validate.check_maml(Config.from_flat(algorithm="maml", **extra))
        # Each rule is about --maml: the same fields pass for Reptile.
        if "meta_lr" not in extra and "maml_query_shots" not in extra:
            validate.check_maml(Config.from_flat(**extra))
    with pytest.raises(ValueError, match="--foml cannot"):
        validate.algorithm(foml=True, maml=True)
    with pytest.raises(ValueError, match="--maml-first-order needs --maml"):
        validate.check_maml(Config.from_flat(maml_first_order=True))
    validate.check_maml(Config.from_flat(algorithm="maml", maml_first_order=True))
    # The run's own checks include them (a Config built in code, not from flags).
    with pytest.raises(ValueError, match="--sgd cannot"):
        validate.check_flags(Config.from_flat(algorithm="maml", sgd=True))


def test_conflicting_flags_exit_with_the_message(capsys):
    from supervised_reptile.flags import parse_args
    with pytest.raises(SystemExit) as e:
        parse_args(["--maml", "--foml"], "omniglot")
    assert e.value.code == 2
    assert "--foml cannot be combined with --maml" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        parse_args(["--maml", "--sgd"], "omniglot")
    assert e.value.code == 2
    assert "--sgd cannot be combined with --maml" in capsys.readouterr().err


def test_maml_presets_are_the_papers_settings():
    from supervised_reptile.flags import parse_args
    o15 = parse_args(["--preset", "maml-o15"], "omniglot")
    assert (o15.meta.algorithm, o15.task.shots, o15.inner.maml_inner_lr, o15.inner.inner_iters,
            o15.eval.eval_iters, o15.meta.meta_batch, o15.meta.meta_lr, o15.meta.meta_iters,
            o15.eval.eval_samples) == ("maml", 1, 0.4, 1, 3, 32, 1e-3, 60000, 600)
    assert o15.effective_query_shots == 1
    o120 = parse_args(["--preset", "maml-o120"], "omniglot")
    assert (o120.task.classes, o120.inner.maml_inner_lr, o120.inner.inner_iters,
            o120.meta.meta_batch) == (20, 0.1, 5, 16)
    m15 = parse_args(["--preset", "maml-m15", "--maml-first-order"], "miniimagenet")
    assert (m15.inner.maml_inner_lr, m15.inner.inner_iters, m15.eval.eval_iters,
            m15.meta.meta_batch, m15.effective_query_shots, m15.meta.maml_first_order) == \
        (0.01, 5, 10, 4, 15, True)
    assert parse_args(["--preset", "maml-m55"], "miniimagenet").meta.meta_batch == 2


def test_maml_task_specs_use_the_whole_support_set():
    from supervised_reptile.build import task_specs
    from supervised_reptile.flags import parse_args
    config = parse_args(["--preset", "maml-m15"], "miniimagenet")
    train, evaluation = task_specs(config)
    assert (train.num_classes, train.num_shots, train.tail_shots, train.batch_size,
            train.num_batches) == (5, 1 + 15, 15, 5, 5 + 1)
    assert (evaluation.num_shots, evaluation.batch_size, evaluation.num_batches) == (1, 5, 10)


def _readme_maml_commands():
    import os
    import re
    import shlex
    from conftest import REPO
    text = open(os.path.join(REPO, "README.md")).read()
    section = text.split("## Second-order MAML")[1].split("\n## ")[0]
    return [(m.group(1), shlex.split(m.group(2))) for m in
            re.finditer(r"python -u run_(omniglot|miniimagenet)\.py (.*)", section)]


def test_readme_commands_equal_the_maml_presets():
    from supervised_reptile.presets import MAML_PRESETS
    from supervised_reptile.flags import parse_args
    commands = _readme_maml_commands()
    assert len(commands) == len(MAML_PRESETS) + 1  # plus first-order Mini-ImageNet 1-shot
    names = set()
    for dataset, args in commands:
        config = parse_args(args, dataset)
        name = config.run.checkpoint[len("ckpt_"):]
        first_order = name.startswith("fomaml-")
        preset = parse_args(["--preset", name.replace("fomaml-", "maml-")], dataset)
        assert config == preset.replace(checkpoint=config.run.checkpoint,
                                        maml_first_order=first_order)
        names.add(name)
    assert names == set(MAML_PRESETS) | {"fomaml-m15"}


@pytest.mark.slow
def test_run_omniglot_maml_end_to_end(omniglot_dir, tmp_path):
    """The script as users run it: trains, checkpoints the outer Adam state,
    prints MAML's per-step accuracies, and --pretrained restores."""
    import os
    import re
    import subprocess
    import sys
    from conftest import REPO
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    args = [sys.executable, os.path.join(REPO, "run_omniglot.py"), "--maml",
            "--data-dir", omniglot_dir, "--train-characters", "8", "--checkpoint", "ck",
            "--shots", "1", "--classes", "3", "--meta-batch", "2", "--inner-iters", "2",
            "--eval-iters", "2", "--meta-iters", "4", "--eval-interval", "2",
            "--eval-samples", "3", "--maml-inner-lr", "0.4"]
    out = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:4] == ["Training...", *lines[1:3], "Evaluating..."]
    step_line = r"%s accuracy after each inner step \(95%% CI over 3 tasks\): 0: .*, 2: [0-9.]+ \+- [0-9.]+"
    # The shared report: accuracies, CIs, then MAML's per-step protocol.
    assert lines[4].startswith("Train accuracy: ") and lines[5].startswith("Test accuracy: ")
    assert lines[6].startswith("Train accuracy 95% CI: ")
    assert lines[7].startswith("Test accuracy 95% CI: ")
    assert re.fullmatch(step_line % "Train", lines[8]) and re.fullmatch(step_line % "Test", lines[9])
    # The last column of the per-step line is the accuracy after the last step.
    last = float(re.search(r"2: ([0-9.]+) \+-", lines[9]).group(1))
    assert abs(last - float(lines[5].split(": ")[1])) < 1e-4
    reader = tf.train.load_checkpoint(str(tmp_path / "ck" / "model.ckpt-3"))
    assert reader.get_tensor("optimizer/step/.ATTRIBUTES/VARIABLE_VALUE") == 4  # outer Adam
    assert reader.get_tensor("optimizer/m/0/.ATTRIBUTES/VARIABLE_VALUE").any()
    again = subprocess.run(args + ["--pretrained"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == lines[-1]  # same weights, same tasks
