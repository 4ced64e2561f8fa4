"""Shared fixtures: tiny generated datasets in the real on-disk layouts."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_OMNIGLOT_ZIP = os.path.join(REPO, "..", "shared", "data", "omniglot",
                                   "images_background_small1.zip")


def make_omniglot(root, alphabets=3, characters=4, drawings=20, seed=0, size=105):
    """Writes `root/<Alphabet>/characterNN/*.png`: 1-bit PNGs, white background,
    each character a distinct random blob pattern plus per-drawing noise (so
    tasks are learnable)."""
    rng = np.random.default_rng(seed)
    for a in range(alphabets):
        for c in range(characters):
            d = os.path.join(root, f"Alphabet_{a}", f"character{c + 1:02d}")
            os.makedirs(d)
            proto = rng.random((7, 7)) < 0.3
            for k in range(drawings):
                cells = proto ^ (rng.random((7, 7)) < 0.05)
                pix = np.kron(cells, np.ones((15, 15), bool))[:size, :size]
                img = Image.fromarray(~pix).convert("1")
                img.save(os.path.join(d, f"{a * 100 + c:04d}_{k + 1:02d}.png"))
    return str(root)


def make_miniimagenet(root, classes=(3, 2, 2), images=8, seed=0):
    """Writes `root/{train,val,test}/nXXXXXXXX/*.JPEG` with varied sizes and modes."""
    rng = np.random.default_rng(seed)
    for s, (split, n) in enumerate(zip(("train", "val", "test"), classes)):
        for c in range(n):
            wnid = f"n{1000000 * (s + 1) + c:08d}"
            d = os.path.join(root, split, wnid)
            os.makedirs(d)
            color = rng.integers(0, 256, 3)
            for k in range(images):
                h, w = rng.integers(90, 200, 2)
                arr = np.clip(color + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
                img = Image.fromarray(arr)
                if k == 0:
                    img = img.convert("L")  # grayscale JPEGs exist in ImageNet
                img.save(os.path.join(d, f"{wnid}_{k}.JPEG"), quality=90)
    return str(root)


def tiny_conv_model(num_classes: int, seed: int = 0, channels: int = 8):
    """The Omniglot model's layer kinds (reshape, conv -> batch norm -> ReLU,
    flatten, dense) with two narrow blocks: the same code paths, a fraction of
    the tracing and compute."""
    import keras
    rng = np.random.default_rng(seed)
    init = lambda: keras.initializers.GlorotUniform(int(rng.integers(2**31 - 1)))  # noqa: E731
    inputs = keras.Input((28, 28), name="images")
    x = keras.layers.Reshape((28, 28, 1))(inputs)
    for _ in range(2):
        x = keras.layers.Conv2D(channels, 3, strides=2, padding="same",
                                kernel_initializer=init())(x)
        x = keras.layers.BatchNormalization(momentum=0.99, epsilon=1e-3)(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, kernel_initializer=init())(x))


@pytest.fixture
def omniglot_dir(tmp_path):
    return make_omniglot(tmp_path / "omniglot")


@pytest.fixture
def miniimagenet_dir(tmp_path):
    return make_miniimagenet(tmp_path / "miniimagenet")


@pytest.fixture(scope="session")
def real_omniglot_dir(tmp_path_factory):
    """The real Omniglot subset from ../shared, extracted; skips where it is absent."""
    if not os.path.exists(SHARED_OMNIGLOT_ZIP):
        pytest.skip(f"real Omniglot subset not found at {SHARED_OMNIGLOT_ZIP} "
                    "(../shared is absent on this machine)")
    import zipfile
    out = tmp_path_factory.mktemp("real_omniglot")
    with zipfile.ZipFile(SHARED_OMNIGLOT_ZIP) as z:
        z.extractall(out)
    return str(out / "images_background_small1")


#: The training flags of `tiny_run` (kill-and-resume, TensorBoard, export tests).
TINY_RUN_FLAGS = ["--train-characters", "10", "--shots", "1", "--train-shots", "3",
                  "--meta-iters", "20", "--eval-interval", "5", "--eval-samples", "4",
                  "--eval-iters", "3", "--inner-iters", "2", "--meta-batch", "2",
                  "--checkpoint-interval", "1"]


def default_sigint():
    """`preexec_fn` for subprocesses that a test sends Ctrl-C: restores SIGINT's
    default action. A test runner started in the background (`cmd &`,
    `nohup`) passes SIGINT on as ignored, and neither Python nor bash can
    handle a signal that was ignored when it started."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_script(script, *args, cwd, **popen):
    """Runs a run script in a subprocess (`subprocess.run` result, text output)."""
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, os.path.join(REPO, script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600, **popen)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One uninterrupted tiny Omniglot run with --export and --eval-results
    (the resume, TensorBoard, export and predict tests share it): dict of `root`, `data`, `checkpoint`,
    `export`, `results` paths and the process `result`."""
    root = tmp_path_factory.mktemp("tiny_run")
    data = make_omniglot(root / "omni", alphabets=3, characters=5)
    result = run_script("run_omniglot.py", "--data-dir", data, "--checkpoint", "ck",
                        "--export", "exported", "--eval-results", "results.json",
                        *TINY_RUN_FLAGS, cwd=root)
    assert result.returncode == 0, result.stderr
    return {"root": root, "data": data, "checkpoint": str(root / "ck"),
            "export": str(root / "exported"), "results": str(root / "results.json"),
            "result": result}


def pytest_collection_modifyitems(config, items):
    """Tests that need the tiny training run (a subprocess of about 30 s) are
    slow: `pytest -m "not slow"` stays a quick loop."""
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
