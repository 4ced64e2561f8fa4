"""The sinusoid regression run: flags, short runs that must learn, the baselines, the picture."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from supervised_reptile.config import SINUSOID, Config
from supervised_reptile.flags import parse_args
from supervised_reptile.picture import OTHER_COLOURS, PANEL_SIZE
from supervised_reptile.presets import SINUSOID_DEFAULTS
from supervised_reptile.sinusoid_experiment import run

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
    # Four task panels side by side (the height follows the legend's rows).
    assert Image.open(png).size[0] == 4 * PANEL_SIZE[0]
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
