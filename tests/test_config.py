"""Tests of `supervised_reptile.config`: the grouped Config, its flat view and config.json."""

import dataclasses
import json

import pytest

from supervised_reptile import config as config_lib
from supervised_reptile.config import Config
from supervised_reptile.presets import MAML_PRESETS, PRESETS, SINUSOID_DEFAULTS
from supervised_reptile.flags import parse_args


def test_every_field_name_is_unique_across_groups():
    names = [f.name for group in dataclasses.fields(Config)
             for f in dataclasses.fields(group.type)]
    assert len(names) == len(set(names)) == len(Config().flat())


def test_every_field_is_documented():
    for group in dataclasses.fields(Config):
        doc = group.type.__doc__
        for field in dataclasses.fields(group.type):
            assert f"      {field.name}: " in doc, (group.name, field.name)


def test_from_flat_flat_and_replace():
    config = Config.from_flat(classes=20, sgd=True, algorithm="foml", seed=3)
    assert (config.task.classes, config.inner.sgd, config.meta.algorithm, config.run.seed) == \
        (20, True, "foml", 3)
    assert Config.from_flat(**config.flat()) == config
    changed = config.replace(classes=5, export="x")
    assert (changed.task.classes, changed.run.export, changed.inner.sgd) == (5, "x", True)
    assert config.task.classes == 20  # frozen: replace makes a copy
    with pytest.raises(TypeError, match="unknown Config fields: \\['foml'\\]"):
        Config.from_flat(foml=True)


@pytest.mark.parametrize("fields", [f for _, f in {**PRESETS, **MAML_PRESETS}.values()]
                         + [SINUSOID_DEFAULTS])
def test_presets_name_only_config_fields(fields):
    assert set(Config.from_flat(**fields).flat().items()) >= set(fields.items())


def test_effective_shots():
    assert Config.from_flat(shots=3, train_shots=0).effective_train_shots == 3
    assert Config.from_flat(shots=3, train_shots=10).effective_train_shots == 10
    assert Config.from_flat(shots=3, maml_query_shots=0).effective_query_shots == 3
    assert Config.from_flat(shots=3, maml_query_shots=15).effective_query_shots == 15
    assert parse_args(["--shots", "2", "--train-shots", "7"], "omniglot").effective_train_shots == 7


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().task.shots = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().task = None


@pytest.mark.parametrize("argv, dataset", [
    (["--preset", "o15t", "--foml", "--foml-tail", "3"], "omniglot"),
    (["--seed", "4", "--weight-decay", "0.9"], "miniimagenet"),
    (["--preset", "maml-m15", "--maml-first-order"], "miniimagenet"),
])
def test_save_round_trips(tmp_path, argv, dataset):
    cfg = parse_args(argv, dataset)
    target = tmp_path / "nested" / "ckpt"
    config_lib.save(cfg, str(target))
    config_lib.save(cfg, str(target))  # an existing directory is fine
    data = json.loads((target / "config.json").read_text())
    assert set(data) == {f.name for f in dataclasses.fields(Config)}
    assert data["data"]["dataset"] == dataset
    assert config_lib.from_dict(data) == cfg
    assert config_lib.read(str(target)) == cfg.flat()
    assert not (target / "config.json.tmp").exists()


@pytest.mark.parametrize("switches, algorithm", [
    ({}, "reptile"), ({"foml": True}, "foml"), ({"maml": True}, "maml"),
    ({"foml": False, "maml": False}, "reptile")])
def test_the_old_flat_format_still_reads(tmp_path, switches, algorithm):
    # What earlier versions wrote: flat fields, the foml/maml switches, maybe unknown keys.
    old = dict(dataclasses.asdict(Config().task), classes=20, seed=7, meta_iters=5,
               removed_option=1, **switches)
    (tmp_path / "config.json").write_text(json.dumps(old))
    flat = config_lib.read(str(tmp_path))
    assert flat["algorithm"] == algorithm if switches.get("foml") or switches.get("maml") \
        else "algorithm" not in flat
    config = config_lib.from_dict(old, checkpoint="ck")
    assert (config.task.classes, config.run.seed, config.meta.meta_iters) == (20, 7, 5)
    assert (config.meta.algorithm, config.run.checkpoint) == (algorithm, "ck")


def test_read_without_a_file_and_with_a_broken_one(tmp_path):
    assert config_lib.read(str(tmp_path)) is None
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read .*config.json"):
        config_lib.read(str(tmp_path))


def test_the_config_module_names_no_flag():
    source = open(config_lib.__file__).read()
    assert "argparse" not in source and '"--' not in source
