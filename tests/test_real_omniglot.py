"""A short training run on real Omniglot characters (../shared) must beat chance clearly."""

import pytest

from supervised_reptile import experiment
from supervised_reptile.config import Config
from supervised_reptile.presets import PRESETS


@pytest.mark.slow
def test_short_training_beats_chance_on_held_out_characters(real_omniglot_dir, tmp_path):
    _, preset = PRESETS["o15t"]
    config = Config.from_flat(dataset="omniglot", data_dir=real_omniglot_dir,
                              train_characters=100, checkpoint=str(tmp_path / "ck"),
                              eval_interval=1000, **dict(preset, meta_iters=200, eval_samples=60))
    lines = []
    results = experiment.run(config, log_fn=lines.append)
    # 5-way: chance is 0.2. 200 meta-iterations reached about 0.5 here.
    assert results["test"] > 0.35, lines
