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
