"""The few-shot prediction command on image folders, with the tiny run's exported model."""

import os
import shutil

import numpy as np
import pytest

from supervised_reptile import cli, prediction
from supervised_reptile.data import omniglot


def _folders(data, tmp_path, num_classes, shots=2):
    """support/<character>/ with `shots` drawings each; query/ with one more drawing each."""
    chars = omniglot.list_characters(data)[-num_classes:]
    truth = {}
    for c in chars:
        name = os.path.basename(os.path.dirname(c)) + "_" + os.path.basename(c)
        files = sorted(os.listdir(c))
        os.makedirs(tmp_path / "support" / name)
        for f in files[:shots]:
            shutil.copy(os.path.join(c, f), tmp_path / "support" / name / f)
        os.makedirs(tmp_path / "query", exist_ok=True)
        shutil.copy(os.path.join(c, files[-1]), tmp_path / "query" / files[-1])
        truth[files[-1]] = name
    return str(tmp_path / "support"), str(tmp_path / "query"), truth


def test_prints_a_class_name_per_query_image(tiny_run, tmp_path, capsys):
    support, query, truth = _folders(tiny_run["data"], tmp_path, 3)
    assert cli.predict_main(["--model", tiny_run["export"], "--support", support,
                             "--query", query]) == 0
    lines = capsys.readouterr().out.splitlines()
    got = dict(line.split("\t") for line in lines)
    assert sorted(got) == sorted(truth) and set(got.values()) <= set(truth.values())
    assert sum(got[f] == truth[f] for f in truth) >= 2  # chance: 1 of 3


def test_support_images_are_preprocessed_as_in_training(tiny_run, tmp_path):
    support, _, _ = _folders(tiny_run["data"], tmp_path, 2)
    images, labels, names = prediction.read_support(support, omniglot.read_image)
    first = os.path.join(support, names[0], sorted(os.listdir(os.path.join(support, names[0])))[0])
    assert images.shape == (4, 28, 28) and labels.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(images[0], omniglot.read_image(first) / np.float32(255))
    assert set(np.unique(images)) <= {0.0, 1.0}  # background 1, strokes 0


def test_more_classes_than_the_model_is_a_clear_error(tiny_run, tmp_path):
    support, query, _ = _folders(tiny_run["data"], tmp_path, 6, shots=1)
    with pytest.raises(ValueError, match="6 classes in .* at most 5"):
        prediction.predict(tiny_run["export"], support, query)


def test_scores_are_probabilities_whose_largest_is_the_label(tiny_run, tmp_path, capsys):
    support, query, truth = _folders(tiny_run["data"], tmp_path, 3)
    assert cli.predict_main(["--model", tiny_run["export"], "--support", support,
                             "--query", query, "--scores"]) == 0
    for line in capsys.readouterr().out.splitlines():
        name, label, *scores = line.split("\t")
        probs = {c: float(p) for c, p in (s.split("=") for s in scores)}
        assert sorted(probs) == sorted(os.listdir(support))
        assert abs(sum(probs.values()) - 1) < 0.01
        assert max(probs, key=probs.get) == label


def test_a_training_checkpoint_given_as_the_model_says_how_to_export_it(tiny_run, tmp_path,
                                                                        capsys):
    support, query, _ = _folders(tiny_run["data"], tmp_path, 2)
    ck = tiny_run["checkpoint"]
    assert cli.predict_main(["--model", ck, "--support", support, "--query", query]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "is a training checkpoint, not an exported model" in err
    assert f"python -m supervised_reptile.export --checkpoint {ck} --export {ck}_export" in err
    assert cli.predict_main(["--model", str(tmp_path / "nothing"), "--support", support,
                             "--query", query]) == 2
    assert "does not exist" in capsys.readouterr().err
