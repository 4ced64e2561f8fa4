"""Omniglot from a decoded store: the same pools, split and rotated per run, as
decoding each split's characters; a run opens the store instead of decoding."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import make_omniglot
from supervised_reptile import cli
from supervised_reptile.data import omniglot, registry, store
from supervised_reptile.data.class_pool import list_images
from test_omniglot import original_split


@pytest.fixture
def small_omniglot(tmp_path):
    return make_omniglot(tmp_path / "small", alphabets=2, characters=3, drawings=3)


def _pools_equal(a, b):
    assert a.names == b.names
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.images.shape == b.images.shape
    np.testing.assert_array_equal(a.images, b.images)


@pytest.mark.parametrize("seed", [0, 7])
def test_store_splits_into_the_pools_decoded_per_split(small_omniglot, tmp_path, seed):
    chars = omniglot.list_characters(small_omniglot)
    ref_train, ref_test = original_split(chars, 4, seed)
    for c in ref_test:  # the test split's classes are narrower than the store's
        os.remove(list_images(c, ".png")[0])
    assert omniglot.Characters.detect(small_omniglot)
    assert not omniglot.Characters.detect(str(tmp_path))  # the alphabets are one level down
    form = registry.find(small_omniglot, "omniglot")
    written = store.write(form, str(tmp_path / "store"), log_fn=lambda line: None)
    index = json.load(open(tmp_path / "store" / store.INDEX))
    assert index["dataset"] == "omniglot" and list(index["splits"]) == [omniglot.ALL]
    assert index["splits"][omniglot.ALL]["names"] == [
        os.path.relpath(c, small_omniglot) for c in chars]
    train, test = omniglot.split_pool(written.read_split(omniglot.ALL), small_omniglot, 4, seed)
    _pools_equal(train, omniglot.load_pool(ref_train, omniglot.ROTATIONS))
    _pools_equal(test, omniglot.load_pool(ref_test))
    assert test.images.shape[1] == 2
    with pytest.raises(ValueError, match="unknown split 'train'"):
        written.read_split("train")


def _run(data, checkpoint, *extra):
    flags = ["--data-dir", data, "--train-characters", "4", "--classes", "2", "--shots", "1",
             "--train-shots", "2", "--inner-batch", "2", "--inner-iters", "1",
             "--eval-batch", "2", "--eval-iters", "1", "--meta-iters", "2",
             "--eval-samples", "3", "--eval-interval", "1", "--checkpoint", checkpoint]
    return cli.main(flags + list(extra), "omniglot")


def test_runs_open_the_store_instead_of_decoding(small_omniglot, tmp_path, capsys,
                                                 monkeypatch):
    index = os.path.join(small_omniglot, store.BESIDE_DATA, store.INDEX)
    printed = {}
    for name, extra in (("off", ["--store", "off"]), ("first", []), ("second", [])):
        assert os.path.exists(index) == (name == "second"), name
        if name == "second":  # decoding a drawing now fails: only the store can serve it
            monkeypatch.setattr(omniglot, "read_image", _no_decoding)
        assert _run(small_omniglot, str(tmp_path / name), *extra) == 0
        out = capsys.readouterr().out
        printed[name] = out.splitlines()
    # The store itself as the data folder, as for the split datasets.
    assert _run(os.path.dirname(index), str(tmp_path / "store_as_data")) == 0
    printed["store_as_data"] = capsys.readouterr().out.splitlines()
    # The store is written quietly: the output is the original's lines, as without it.
    assert printed["off"] == printed["first"] == printed["second"] == printed["store_as_data"]
    assert printed["first"][0] == "Training..."
    split = json.load(open(tmp_path / "first" / "split.json"))
    assert len(split["train"]) == 4 and split["train"][0].startswith("Alphabet_")

    # A drawing redrawn: the store is stale, and the next run decodes again
    # (`store.ensure`, as the runs above called it).
    monkeypatch.undo()
    form = registry.find(small_omniglot, "omniglot")
    assert store.open_if_current(os.path.dirname(index), form) is not None
    path = list_images(omniglot.list_characters(small_omniglot)[0], ".png")[0]
    Image.new("1", (105, 105), 1).save(path)
    os.utime(path, ns=(1, 1))
    assert store.open_if_current(os.path.dirname(index), form) is None
    train, _ = omniglot.split_pool(store.ensure(form, log_fn=lambda line: None).read_split(
        omniglot.ALL), small_omniglot, 4, 0)
    _pools_equal(train, omniglot.load(small_omniglot, 4, 0)[0])


def _no_decoding(path):
    raise AssertionError(f"decoded {path} although the store holds it")


def test_convert_command_writes_an_omniglot_store(small_omniglot, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert cli.convert_main([small_omniglot, "--dataset", "omniglot", "--store", out]) == 0
    assert store.Store(out).dataset == "omniglot"
    assert cli.convert_main([small_omniglot, "--dataset", "omniglot", "--store", out]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert cli.convert_main([str(tmp_path / "none"), "--dataset", "omniglot"]) == 2
    assert "fetch_data.sh omniglot" in capsys.readouterr().err
