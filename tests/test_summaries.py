"""TensorBoard output read back with the tensorboard package: scalars, HParams, episode image."""

import os
import re

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from supervised_reptile.summaries import episode_grid


def _load(path):
    acc = EventAccumulator(path, size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    return acc


def _scalars(acc, tag):
    return {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}


def test_training_scalars_and_episode_image(tiny_run):
    train = _load(os.path.join(tiny_run["checkpoint"], "train"))
    tags = set(train.Tags()["tensors"])
    assert {"accuracy", "inner_loss", "meta_step_size", "iterations_per_second",
            "tasks_per_second", "time/train_seconds", "time/eval_seconds", "episode"} <= tags
    assert sorted(_scalars(train, "inner_loss")) == list(range(20))
    assert all(v > 0 for v in _scalars(train, "inner_loss").values())
    assert set(np.float32(list(_scalars(train, "meta_step_size").values()))) == {np.float32(0.1)}
    assert sorted(_scalars(train, "accuracy")) == [0, 5, 10, 15]
    rates = _scalars(train, "iterations_per_second")
    tasks = _scalars(train, "tasks_per_second")
    assert sorted(rates) == [0, 5, 10, 15] and all(v > 0 for v in rates.values())
    assert all(np.isclose(tasks[s], 2 * rates[s]) for s in rates)  # --meta-batch 2
    train_s = _scalars(train, "time/train_seconds")
    assert train_s[15] > train_s[5] > 0
    # The image: a PNG of the first task, 5 classes x 3 shots of 28x28 with 2-pixel gaps.
    (event,) = train.Tensors("episode")
    width, height, png = tf.make_ndarray(event.tensor_proto)
    assert (int(width), int(height)) == (3 * 30 - 2, 5 * 30 - 2)
    assert tf.io.decode_png(png).shape == (5 * 30 - 2, 3 * 30 - 2, 1)
    test = _load(os.path.join(tiny_run["checkpoint"], "test"))
    assert sorted(_scalars(test, "accuracy")) == [0, 5, 10, 15]


def test_hparams_session_and_final_accuracy_metrics(tiny_run):
    root = _load(tiny_run["checkpoint"])
    tags = root.Tags()["tensors"]

    def plugin_data(tag):
        data = plugin_data_pb2.HParamsPluginData()
        data.ParseFromString(root.SummaryMetadata(tag).plugin_data.content)
        return data

    experiment = plugin_data("_hparams_/experiment").experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"final_accuracy/train",
                                                             "final_accuracy/test"}
    assert "inner_batch" in {h.name for h in experiment.hparam_infos}
    session = plugin_data("_hparams_/session_start_info").session_start_info
    assert session.hparams["meta_iters"].number_value == 20
    assert session.hparams["dataset"].string_value == "omniglot"
    assert session.hparams["transductive"].bool_value is False
    printed = dict(re.findall(r"^(Train|Test) accuracy: ([0-9.]+)$",
                              tiny_run["result"].stdout, re.M))
    assert "final_accuracy/test" in tags
    final = _scalars(root, "final_accuracy/test")
    assert list(final) == [20] and np.isclose(final[20], float(printed["Test"]))


def test_episode_grid_rows_are_classes():
    images = np.stack([np.full((2, 3), i / 10, np.float32) for i in range(6)])  # N=2, 3 shots
    grid = episode_grid(images, 2, pad=1)
    assert grid.shape == (2 * 3 - 1, 3 * 4 - 1, 1)
    assert grid[0, 0, 0] == 0.0 and grid[0, 4, 0] == np.float32(0.1)
    assert grid[3, 0, 0] == np.float32(0.3) and grid[2, 0, 0] == 0.5  # gap
