"""The decoded-image store: written atomically, reused while current, rebuilt when
the source changes, and sampled from exactly like an in-memory pool."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, make_miniimagenet
from supervised_reptile import cli
from supervised_reptile.data import class_pool, forms, miniimagenet, registry, store


def _pools_equal(a, b):
    assert a.names == b.names
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))


def test_store_holds_the_forms_pools_as_memory_maps(tmp_path):
    data = make_miniimagenet(tmp_path / "mini", classes=(3, 2, 2), images=5)
    form = miniimagenet.OriginalLayout(data)
    lines = []
    written = store.write(form, str(tmp_path / "store"), log_fn=lines.append)
    assert lines and "later runs open it instead of decoding" in lines[0]
    index = json.load(open(tmp_path / "store" / store.INDEX))
    assert index["dataset"] == "miniimagenet" and index["image_shape"] == [84, 84, 3]
    assert index["fingerprint"] == form.fingerprint()
    assert index["splits"]["train"]["counts"] == [5, 5, 5]
    for split in forms.SPLITS:
        pool = written.read_split(split)
        assert isinstance(pool.images, np.memmap) and not pool.images.flags.writeable
        _pools_equal(pool, form.read_split(split))
    assert written.scan() == form.scan()
    # No scratch folder is left beside the store.
    assert sorted(os.listdir(tmp_path)) == ["mini", "store"]


def test_ensure_reuses_a_current_store_and_rebuilds_a_stale_one(tmp_path):
    data = make_miniimagenet(tmp_path / "mini", classes=(2, 2, 2), images=3)
    form = miniimagenet.OriginalLayout(data)
    lines = []
    first = store.ensure(form, log_fn=lines.append)
    assert first.data_dir == os.path.join(data, store.BESIDE_DATA)
    assert len(lines) == 1
    mtime = os.stat(os.path.join(first.data_dir, "train.npy")).st_mtime_ns
    again = store.ensure(form, log_fn=lines.append)
    assert len(lines) == 1  # opened, not decoded
    assert os.stat(os.path.join(again.data_dir, "train.npy")).st_mtime_ns == mtime
    # The store inside the data folder is no class of the dataset.
    assert form.scan() == miniimagenet.OriginalLayout(data).scan()
    # Replace one image by another picture: the store follows.
    victim = os.path.join(data, "val", sorted(os.listdir(os.path.join(data, "val")))[0])
    path = os.path.join(victim, sorted(os.listdir(victim))[1])
    from PIL import Image
    Image.fromarray(np.full((84, 84, 3), 7, np.uint8)).save(path, format="JPEG", quality=100)
    rebuilt = store.ensure(form, log_fn=lines.append)
    assert len(lines) == 3 and "decoding again" in lines[1]
    pool = rebuilt.read_split("val")
    assert abs(int(pool.images[0, 1].astype(int).mean()) - 7) <= 2
    _pools_equal(pool, form.read_split("val"))


def test_a_store_passed_as_the_data_folder_is_read_as_it_is(tmp_path):
    data = make_miniimagenet(tmp_path / "mini", classes=(2, 2, 2), images=3)
    path = str(tmp_path / "elsewhere")
    store.write(miniimagenet.OriginalLayout(data), path, log_fn=lambda _: None)
    found = registry.find(path, "miniimagenet")
    assert isinstance(found, store.Store)
    assert registry.guess(path) == "miniimagenet"
    assert store.ensure(found) is found
    with pytest.raises(ValueError, match="is a decoded store of miniimagenet, not of fc100"):
        registry.find(path, "fc100")


def test_bad_images_leave_no_store_or_one_that_remembers_them(tmp_path):
    data = make_miniimagenet(tmp_path / "mini", classes=(2, 2, 2), images=3)
    cls = os.path.join(data, "test", sorted(os.listdir(os.path.join(data, "test")))[0])
    bad = os.path.join(cls, sorted(os.listdir(cls))[0])
    open(bad, "wb").write(b"<html>rate limited</html>")
    form = miniimagenet.OriginalLayout(data)
    path = str(tmp_path / "store")
    with pytest.raises(class_pool.BadImageError, match="HTML"):
        store.write(form, path, log_fn=lambda _: None)
    assert os.listdir(tmp_path) == ["mini"]  # neither a store nor a partial one
    skipped = []
    written = store.ensure(form, path, on_skip=skipped.append, log_fn=lambda _: None)
    assert len(skipped) == 1 and bad in skipped[0]
    assert written.read_split("test").counts.tolist() == [2, 3]
    # A later run that did not ask to skip images is told, not given fewer silently.
    with pytest.raises(ValueError, match=r"left out 1 unreadable image\(s\) \(the first: "
                       r".*HTML.*`skip_bad_images`"):
        store.ensure(form, path, log_fn=lambda _: None)


_SLOW_WRITER = """
import sys, time
from supervised_reptile.data import miniimagenet, store

class Slow(miniimagenet.OriginalLayout):
    def read_split(self, split, on_skip=None, allocate=None):
        pool = super().read_split(split, on_skip, allocate)
        if split == "val":
            print("halfway", flush=True)
            time.sleep(60)
        return pool

store.write(Slow(sys.argv[1]), sys.argv[2])
"""


def test_a_killed_conversion_leaves_nothing_a_run_would_trust(tmp_path):
    data = make_miniimagenet(tmp_path / "mini", classes=(2, 2, 2), images=3)
    path = str(tmp_path / "store")
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, data, path], cwd=REPO,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert proc.stdout.readline().strip() == "halfway"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    partial = [n for n in os.listdir(tmp_path) if ".partial-" in n]
    assert len(partial) == 1 and os.path.exists(tmp_path / partial[0] / "train.npy")
    assert not os.path.exists(path)
    form = miniimagenet.OriginalLayout(data)
    assert store.open_if_current(path, form) is None
    # The next conversion removes the dead process's partial folder and writes the store.
    store.ensure(form, path, log_fn=lambda _: None)
    assert sorted(os.listdir(tmp_path)) == ["mini", "store"]


def test_default_location_falls_back_to_the_cache_for_read_only_data(tmp_path, monkeypatch):
    data = make_miniimagenet(tmp_path / "mini", classes=(2, 2, 2), images=3)
    form = miniimagenet.OriginalLayout(data)
    assert store.default_location(form) == os.path.join(data, ".decoded")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # Root may write anywhere, so the permission check is what is replaced here.
    monkeypatch.setattr(store.os, "access", lambda path, mode: False)
    other = store.default_location(form)
    assert other.startswith(str(tmp_path / "cache" / "supervised_reptile" / "decoded"))
    assert os.path.basename(other).startswith("miniimagenet-")


def test_mapped_sampler_draws_the_same_tasks_as_the_in_memory_one(tmp_path):
    from supervised_reptile import episodes
    data = make_miniimagenet(tmp_path / "mini", classes=(4, 2, 2), images=6)
    form = miniimagenet.OriginalLayout(data)
    mapped = store.write(form, str(tmp_path / "store"), log_fn=lambda _: None)
    in_memory = episodes.sampler_for(form.read_split("train"))
    on_disk = episodes.sampler_for(mapped.read_split("train"))
    assert type(in_memory) is episodes.Sampler and type(on_disk) is episodes.MappedSampler
    spec = episodes.TaskSpec(3, 4, 5, 3, tail_shots=1)
    a = episodes.train_dataset(in_memory, spec, seed=5, meta_batch=2, start_iteration=3)
    b = episodes.train_dataset(on_disk, spec, seed=5, meta_batch=2, start_iteration=3)
    for x, y in zip(a.take(3), b.take(3)):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u.numpy(), v.numpy())
    ev = episodes.TaskSpec(3, 2, 3, 2)
    for x, y in zip(episodes.eval_dataset(in_memory, ev, 5, 10, 3),
                    episodes.eval_dataset(on_disk, ev, 5, 10, 3)):
        assert x.query_images.shape == (3, 84, 84, 3)
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u.numpy(), v.numpy())


def test_convert_command(tmp_path, capsys):
    data = make_miniimagenet(tmp_path / "mini", classes=(2, 2, 2), images=3)
    out = str(tmp_path / "out")
    assert cli.convert_main([data, "--dataset", "miniimagenet", "--store", out]) == 0
    assert store.Store.detect(out)
    assert cli.convert_main([data, "--dataset", "miniimagenet", "--store", out]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert cli.convert_main([str(tmp_path / "none"), "--dataset", "miniimagenet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_runs_train_from_the_store_as_from_decoded_images(tmp_path, capsys):
    data = make_miniimagenet(tmp_path / "mini", classes=(3, 3, 3), images=4)
    base = ["--data-dir", data, "--classes", "2", "--shots", "1", "--train-shots", "2",
            "--inner-batch", "2", "--inner-iters", "1", "--eval-batch", "2", "--eval-iters", "1",
            "--meta-iters", "2", "--eval-samples", "3", "--eval-interval", "1"]
    results = {}
    for name, extra in (("off", ["--store", "off"]), ("first", []), ("second", [])):
        began = time.perf_counter()
        assert cli.main(base + extra + ["--checkpoint", str(tmp_path / name)],
                        "miniimagenet") == 0
        out = capsys.readouterr().out
        results[name] = [l for l in out.splitlines() if "accuracy" in l or l.startswith("batch")]
        assert ("into the store" in out) == (name == "first"), (name, out)
        del began
    assert results["off"] == results["first"] == results["second"]
    split = json.load(open(tmp_path / "first" / "split.json"))
    assert split == {s: sorted(os.listdir(os.path.join(data, s))) for s in forms.SPLITS}
