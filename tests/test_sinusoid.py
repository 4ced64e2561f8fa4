"""Sinusoid regression: tasks, picture, and short runs that must learn."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from supervised_reptile import sinusoid
from supervised_reptile.config import SINUSOID, Config
from supervised_reptile.presets import SINUSOID_DEFAULTS
from supervised_reptile.flags import parse_args
from supervised_reptile.episodes import TaskSpec
from supervised_reptile.picture import COLOURS, OTHER_COLOURS, Fit, draw_fits
from supervised_reptile.sinusoid_experiment import run


def test_tasks_are_sinusoids_in_range_and_a_function_of_the_seed():
    spec = TaskSpec(1, 10, 10, 3)
    a = list(sinusoid.eval_dataset(spec, seed=3, stream=10, num_tasks=5))
    b = list(sinusoid.eval_dataset(spec, seed=3, stream=10, num_tasks=5))
    c = list(sinusoid.eval_dataset(spec, seed=4, stream=10, num_tasks=5))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.support_images, y.support_images)
    assert not np.allclose(a[0].support_labels, c[0].support_labels)
    for ep in a:
        x, y = ep.support_images.numpy()[:, 0], ep.support_labels.numpy()
        assert np.all((x >= -5) & (x <= 5)) and ep.batches.shape == (3, 10)
        grid, truth = ep.query_images.numpy()[:, 0], ep.query_labels.numpy()
        np.testing.assert_allclose(grid, np.linspace(-5, 5, sinusoid.EVAL_QUERY_POINTS),
                                   atol=1e-6)
        # Recover A and phase from the grid: y = A sin(x - phase) = p sin x + q cos x.
        (p, q), *_ = np.linalg.lstsq(np.stack([np.sin(grid), np.cos(grid)], 1), truth,
                                     rcond=None)
        amplitude, phase = np.hypot(p, q), np.arctan2(-q, p)
        assert 0.1 <= amplitude <= 5.0 and -1e-4 <= phase <= np.pi + 1e-4
        np.testing.assert_allclose(y, amplitude * np.sin(x - phase), atol=1e-4)


def test_maml_training_tasks_hold_a_separate_query_set():
    spec = TaskSpec(1, 10 + 6, 10, 3 + 1, tail_shots=6)  # K=10 support, 6 queries, 3 steps
    tasks = next(iter(sinusoid.train_dataset(spec, seed=0, meta_batch=4)))
    assert tasks.images.shape == (4, 16, 1) and tasks.labels.shape == (4, 16)
    for m in range(4):
        tail = tasks.tail[m].numpy()
        np.testing.assert_array_equal(tail, np.arange(6))
        for row in tasks.batches[m].numpy():  # each step: the whole support set
            np.testing.assert_array_equal(np.sort(row), np.arange(6, 16))


def test_picture_draws_every_curve():
    grid = np.linspace(-5, 5, 50)
    fit = Fit(grid, np.sin(grid), 0 * grid, 2 * np.sin(grid), grid[:5], np.sin(grid[:5]))
    image = draw_fits([fit, fit], size=(100, 80))
    assert image.shape == (100, 200, 3) and image.dtype == np.uint8
    pixels = {tuple(p) for p in image.reshape(-1, 3)}
    assert all(colour in pixels for colour in COLOURS.values())
    with pytest.raises(ValueError, match="at least one"):
        draw_fits([])


SHORT = ["--meta-iters", "300", "--eval-samples", "20", "--eval-interval", "100"]


@pytest.mark.slow
# MAML with a larger outer step and more (cheaper) iterations.
@pytest.mark.parametrize("algorithm", [[], ["--maml", "--meta-lr", "0.003", "--meta-iters", "500"]],
                         ids=["reptile", "maml"])
def test_short_run_learns_and_writes_picture_checkpoint_and_events(algorithm, tmp_path):
    config = parse_args(SHORT + algorithm + ["--checkpoint", str(tmp_path / "ck")], SINUSOID)
    lines = []
    results = run(config, log_fn=lines.append)
    # Random init adapted on 10 points stays near the variance of the targets
    # (about 4); meta-training must bring the adapted error far below it.
    assert results["mse_before_training"] > 2.0
    assert results["mse_after_training"] < 0.35 * results["mse_before_training"]
    assert lines[0].startswith("Held-out MSE before meta-training")
    assert "Training..." in lines and lines[-1].startswith("Wrote ")
    png = tmp_path / "ck" / "sinusoid.png"
    assert Image.open(png).size == (4 * 320, 260)
    last = config.meta.meta_iters - 1
    assert tf.train.latest_checkpoint(str(tmp_path / "ck")).endswith(f"model.ckpt-{last}")
    events = EventAccumulator(str(tmp_path / "ck" / "train"), size_guidance={"tensors": 0})
    events.Reload()
    assert "fits" in events.Tags()["tensors"]
    assert [e.step for e in events.Tensors("inner_loss")] == [*range(0, last, 100), last]


def test_defaults_and_conflicts():
    config = parse_args([], SINUSOID)
    assert config == Config.from_flat(**SINUSOID_DEFAULTS)
    assert (config.data.dataset, config.task.shots, config.inner.sgd, config.meta.algorithm,
            config.inner.learning_rate) == (SINUSOID, 10, False, "reptile", 0.02)
    assert parse_args(["--maml"], SINUSOID).meta.algorithm == "maml"
    # The image runs' options are not flags of the sinusoid command.
    for flag in (["--preset", "o15"], ["--data-dir", "d"], ["--export", "x"]):
        with pytest.raises(SystemExit):
            parse_args(flag, SINUSOID)
    with pytest.raises(SystemExit):
        parse_args(["--maml", "--foml"], SINUSOID)
    assert os.path.basename(config.run.checkpoint) == "sinusoid_checkpoint"


def test_baseline_flags():
    assert parse_args(["--baseline", "pretrained"], SINUSOID).meta.algorithm == "pretrained"
    assert parse_args(["--baseline", "oracle"], SINUSOID).meta.algorithm == "oracle"
    for extra in (["--maml"], ["--foml"]):
        with pytest.raises(SystemExit):
            parse_args(["--baseline", "oracle"] + extra, SINUSOID)


def test_oracle_tasks_carry_amplitude_and_phase():
    spec = TaskSpec(1, 10, 10, 3)
    plain = next(iter(sinusoid.eval_dataset(spec, seed=3, stream=10, num_tasks=1)))
    oracle = next(iter(sinusoid.eval_dataset(spec, 3, 10, 1, oracle=True)))
    assert oracle.support_images.shape == (10, 3) and oracle.query_images.shape[1] == 3
    np.testing.assert_array_equal(oracle.support_images[:, :1], plain.support_images)
    amplitude, phase = oracle.query_images[0, 1], oracle.query_images[0, 2]
    np.testing.assert_allclose(oracle.query_labels,
                               amplitude * np.sin(oracle.query_images[:, 0] - phase), atol=1e-5)
    assert np.all(oracle.support_images[:, 1:] == oracle.query_images[0, 1:])


@pytest.mark.slow
def test_baselines_train_and_are_drawn_beside_maml(tmp_path):
    """The oracle knows each task and must fit it almost perfectly (measured:
    MSE 0.04 after 1000 iterations, from 4.8); the pretrained network learns
    the mixture's mean (about 0) and fine-tuning on 10 points barely moves it,
    so it stays far behind the oracle."""
    results = {}
    for baseline, iters in (("pretrained", "300"), ("oracle", "1000")):
        config = parse_args(SHORT + ["--baseline", baseline, "--meta-lr", "0.003", "--meta-iters",
                                     iters, "--checkpoint", str(tmp_path / baseline)], SINUSOID)
        results[baseline] = run(config, log_fn=lambda _: None)
    assert results["oracle"]["mse_after_training"] < 0.1 * results["oracle"]["mse_before_training"]
    assert results["pretrained"]["mse_after_training"] > 5 * results["oracle"]["mse_after_training"]
    lines = []
    config = parse_args(SHORT + ["--maml", "--meta-iters", "20", "--checkpoint",
                                 str(tmp_path / "maml"), "--compare", str(tmp_path / "pretrained"),
                                 str(tmp_path / "oracle")], SINUSOID)
    run(config, log_fn=lines.append)
    pixels = {tuple(p) for p in np.asarray(Image.open(tmp_path / "maml" / "sinusoid.png"))
              .reshape(-1, 3)}
    assert OTHER_COLOURS[0] in pixels and OTHER_COLOURS[1] in pixels
    with pytest.raises(FileNotFoundError, match="no config.json"):
        run(parse_args(SHORT + ["--meta-iters", "1", "--checkpoint", str(tmp_path / "x"),
                                "--compare", str(tmp_path / "nothing")], SINUSOID))
