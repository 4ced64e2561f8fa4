"""Tests of fetch_data.sh against fake datasets served from 127.0.0.1.

The script runs for real (bash, curl, unzip, xargs); only the remote servers
are replaced by a local HTTP server that supports single byte-range requests.
"""

import io
import os
import random
import re
import shutil
import signal
import subprocess
import tarfile
import threading
import time
import zipfile
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from conftest import default_sigint

SCRIPT = Path(__file__).resolve().parents[1] / "fetch_data.sh"
SHIPPED_METADATA = SCRIPT.parent / "metadata" / "miniimagenet"

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("unzip") is None,
    reason="fetch_data.sh needs curl and unzip",
)

# ----------------------------------------------------------------- server

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeHandler(BaseHTTPRequestHandler):
    """Serves files below `server.root`, honouring one `bytes=a-b` range.

    `server.honor_ranges = False` makes it answer every request with the whole
    file (200), like a server without range support.
    """

    def log_message(self, format, *args):  # keep stderr quiet
        pass

    def _file(self):
        root = self.server.root
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        path = (root / rel).resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path

    def _send(self, body_bytes):
        path = self._file()
        if path is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        data = path.read_bytes()
        size = len(data)
        status, start, end = HTTPStatus.OK, 0, size - 1
        m = _RANGE.match(self.headers.get("Range", "").strip())
        if m and self.server.honor_ranges:
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else size - 1
            if start >= size or end < start:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            end = min(end, size - 1)  # RFC 9110: a range past the end is cut
            status = HTTPStatus.PARTIAL_CONTENT
        payload = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body_bytes:
            self.wfile.write(payload)

    def do_GET(self):
        time.sleep(getattr(self.server, "delay", 0))
        self._send(True)

    def do_HEAD(self):
        self._send(False)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.daemon_threads = True
    httpd.root = root.resolve()
    httpd.honor_ranges = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


# ------------------------------------------------------------ fake inputs

# archive -> alphabet -> number of characters (real: 30 + 20 alphabets).
OMNIGLOT_LAYOUT = {
    "images_background": {"Alphabet_of_the_Magi": 3, "Japanese_(hiragana)": 2},
    "images_evaluation": {"Angelic": 2, "Ojibwe_(Canadian_Aboriginal_Syllabics)": 3},
}
N_ALPHABETS = sum(len(a) for a in OMNIGLOT_LAYOUT.values())
N_CHARACTERS = sum(n for a in OMNIGLOT_LAYOUT.values() for n in a.values())
PER_CHARACTER = 20

# subset -> wnid -> number of images.
MINI_LAYOUT = {
    "train": {"n01532829": 3, "n01558993": 2},
    "val": {"n01855672": 2},
    "test": {"n01930112": 3},
}


def _png(rng):
    img = Image.new("1", (105, 105), 1)
    px = img.load()
    for _ in range(40):
        px[rng.randrange(105), rng.randrange(105)] = 0
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def omniglot_zips(server):
    """Writes the two zips into the server root; returns {relpath: bytes}.

    relpath is `<Alphabet>/<character>/<file>.png`, the layout expected under
    DATA_DIR/omniglot.
    """
    rng = random.Random(0)
    expected = {}
    index = 0
    for archive, alphabets in OMNIGLOT_LAYOUT.items():
        with zipfile.ZipFile(server.root / f"{archive}.zip", "w") as zf:
            zf.writestr(f"{archive}/", b"")
            for alphabet, n_chars in alphabets.items():
                zf.writestr(f"{archive}/{alphabet}/", b"")
                for c in range(1, n_chars + 1):
                    index += 1
                    char = f"character{c:02d}"
                    zf.writestr(f"{archive}/{alphabet}/{char}/", b"")
                    for drawer in range(1, PER_CHARACTER + 1):
                        name = f"{index:04d}_{drawer:02d}.png"
                        data = _png(rng)
                        zf.writestr(f"{archive}/{alphabet}/{char}/{name}", data)
                        expected[f"{alphabet}/{char}/{name}"] = data
    return expected


@pytest.fixture
def mini_sources(server, tmp_path):
    """Writes a fake tar blob into the server root and CSVs into tmp_path.

    Returns (metadata_dir, {relpath: bytes}, blob_size) where relpath is
    `<subset>/<wnid>/<file>.JPEG`. The val CSV uses CRLF line ends.
    """
    rng = random.Random(1)
    blob = bytearray()
    expected = {}
    meta = tmp_path / "metadata" / "miniimagenet"
    for subset, classes in MINI_LAYOUT.items():
        (meta / subset).mkdir(parents=True)
        for wnid, n in classes.items():
            lines = []
            for i in range(n):
                blob += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
                payload = b"\xff\xd8\xff\xe0" + rng.randbytes(rng.randrange(50, 3000))
                start = len(blob)
                blob += payload
                name = f"{wnid}_{10000 + i}.JPEG"
                lines.append(f"{name},{start}-{start + len(payload) - 1}")
                expected[f"{subset}/{wnid}/{name}"] = payload
            eol = "\r\n" if subset == "val" else "\n"
            (meta / subset / f"{wnid}.csv").write_bytes((eol.join(lines) + eol).encode())
    blob += b"\0" * 1024  # tar end padding
    (server.root / "ILSVRC2012_img_train.tar").write_bytes(bytes(blob))
    return meta, expected, len(blob)


def _tar_bytes(members):
    """An uncompressed tar of {name: bytes} -> (tar bytes, {name: data offset})."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        offsets = {m.name: m.offset_data for m in tf.getmembers()}
    return buf.getvalue(), offsets


@pytest.fixture
def mini_tar(server, tmp_path):
    """A real ILSVRC2012_img_train.tar in miniature, in the server root.

    Like the real one, an uncompressed tar of one uncompressed tar per class
    (plus a class that no CSV names); the CSVs in tmp_path give each JPEG's
    byte range in the outer tar. Returns (metadata_dir, {relpath: bytes},
    tar_path) with relpath `<subset>/<wnid>/<file>.JPEG`.
    """
    rng = random.Random(2)
    counts = {wnid: n for classes in MINI_LAYOUT.values() for wnid, n in classes.items()}
    counts["n09999999"] = 4  # in the tar, in no CSV
    images = {wnid: {f"{wnid}_{10000 + i}.JPEG":
                     b"\xff\xd8\xff\xe0" + rng.randbytes(rng.randrange(50, 3000))
                     for i in range(n)}
              for wnid, n in counts.items()}
    inner = {wnid: _tar_bytes(files) for wnid, files in images.items()}
    outer, outer_offsets = _tar_bytes({f"{wnid}.tar": data for wnid, (data, _) in inner.items()})
    tar_path = server.root / "ILSVRC2012_img_train.tar"
    tar_path.write_bytes(outer)

    meta = tmp_path / "metadata" / "miniimagenet"
    expected = {}
    for subset, classes in MINI_LAYOUT.items():
        (meta / subset).mkdir(parents=True)
        for wnid in classes:
            rows = []
            for name, data in images[wnid].items():
                start = outer_offsets[f"{wnid}.tar"] + inner[wnid][1][name]
                assert outer[start:start + len(data)] == data
                rows.append(f"{name},{start}-{start + len(data) - 1}\n")
                expected[f"{subset}/{wnid}/{name}"] = data
            (meta / subset / f"{wnid}.csv").write_text("".join(rows))
    return meta, expected, tar_path


def run_script(cwd, *args, **env):
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("DATA_DIR", "OMNIGLOT_URL", "IMAGENET_TAR_URL", "IMAGENET_TAR",
                             "MINIIMAGENET_METADATA", "http_proxy", "https_proxy",
                             "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")}
    full_env["FETCH_JOBS"] = "2"
    full_env.update({k: str(v) for k, v in env.items()})
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


def omniglot_env(server):
    return dict(OMNIGLOT_URL=server.url,
                OMNIGLOT_EXPECT_ALPHABETS=N_ALPHABETS,
                OMNIGLOT_EXPECT_CHARACTERS=N_CHARACTERS)


def mini_env(server, meta):
    return dict(IMAGENET_TAR_URL=f"{server.url}/ILSVRC2012_img_train.tar",
                MINIIMAGENET_METADATA=meta)


def files_under(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def snapshot(root):
    return {p.relative_to(root).as_posix(): (p.is_dir(), p.stat().st_mtime_ns,
                                             None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


def snapshot_tree(root):
    """Every path below root -> None (folder) or its bytes."""
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


def assert_no_tmp(data_dir):
    left = [p.name for p in data_dir.iterdir() if p.name.startswith(".")]
    assert left == [], f"temporary folders left in {data_dir}: {left}"


# ------------------------------------------------------------------ tests

def test_omniglot_default_data_dir(tmp_path, server, omniglot_zips):
    # DATA_DIR unset: the default `data` is relative to the working directory.
    res = run_script(tmp_path, "omniglot", **omniglot_env(server))
    assert res.returncode == 0, res.stderr
    data_dir = tmp_path / "data"
    got = files_under(data_dir / "omniglot")
    assert got.keys() == omniglot_zips.keys()
    for rel, data in omniglot_zips.items():
        assert got[rel] == data, rel
    alphabets = {p.name for p in (data_dir / "omniglot").iterdir()}
    assert alphabets == {a for arch in OMNIGLOT_LAYOUT.values() for a in arch}
    assert sorted(p.name for p in data_dir.iterdir()) == ["omniglot"]
    assert_no_tmp(data_dir)
    assert "miniimagenet" not in res.stdout


def test_miniimagenet(tmp_path, server, mini_sources):
    meta, expected, _ = mini_sources
    data_dir = tmp_path / "out dir"  # a space in the path
    res = run_script(tmp_path, "miniimagenet", DATA_DIR=data_dir, **mini_env(server, meta))
    assert res.returncode == 0, res.stderr
    got = files_under(data_dir / "miniimagenet")
    assert got.keys() == expected.keys()
    for rel, data in expected.items():
        assert got[rel] == data, rel
    root = data_dir / "miniimagenet"
    assert sorted(p.name for p in root.iterdir()) == ["test", "train", "val"]
    for subset, classes in MINI_LAYOUT.items():
        assert sorted(p.name for p in (root / subset).iterdir()) == sorted(classes)
    assert sorted(p.name for p in data_dir.iterdir()) == ["miniimagenet"]
    # Progress: one line per class, not one per file.
    assert res.stdout.count("\n") < 10
    assert "train/n01532829" in res.stdout


def test_both_then_second_run_skips(tmp_path, server, omniglot_zips, mini_sources):
    meta, expected, _ = mini_sources
    data_dir = tmp_path / "data"
    env = dict(DATA_DIR=data_dir, **omniglot_env(server), **mini_env(server, meta))
    res = run_script(tmp_path, **env)
    assert res.returncode == 0, res.stderr
    assert files_under(data_dir / "omniglot") == omniglot_zips
    assert files_under(data_dir / "miniimagenet") == expected
    before = snapshot(data_dir)

    # Second run, from another directory, with the sources gone: must skip.
    for p in server.root.iterdir():
        p.unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = run_script(elsewhere, **env)
    assert res.returncode == 0, res.stderr
    assert "omniglot" in res.stdout and "miniimagenet" in res.stdout
    assert res.stdout.count("skipping") == 2
    assert snapshot(data_dir) == before
    assert list(elsewhere.iterdir()) == []


def test_omniglot_404(tmp_path, server, omniglot_zips):
    data_dir = tmp_path / "data"
    env = omniglot_env(server)
    env["OMNIGLOT_URL"] = f"{server.url}/no/such/mirror"
    res = run_script(tmp_path, "omniglot", DATA_DIR=data_dir, **env)
    assert res.returncode != 0
    assert f"{server.url}/no/such/mirror/images_background.zip" in res.stderr
    assert "OMNIGLOT_URL" in res.stderr
    assert "404" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not (data_dir / "omniglot").exists()
    assert list(data_dir.iterdir()) == []


def test_omniglot_count_mismatch(tmp_path, server, omniglot_zips):
    data_dir = tmp_path / "data"
    env = omniglot_env(server)
    env["OMNIGLOT_EXPECT_CHARACTERS"] = N_CHARACTERS + 1
    res = run_script(tmp_path, "omniglot", DATA_DIR=data_dir, **env)
    assert res.returncode != 0
    assert f"expected {N_CHARACTERS + 1} characters, found {N_CHARACTERS}" in res.stderr
    assert list(data_dir.iterdir()) == []


def test_miniimagenet_truncated_range(tmp_path, server, mini_sources):
    meta, _, blob_size = mini_sources
    # The last test image now ends past the end of the blob: the server cuts
    # the answer (206 with fewer bytes), so the file comes out short.
    csv = meta / "test" / "n01930112.csv"
    lines = csv.read_text().splitlines()
    name, rng = lines[-1].split(",")
    start = int(rng.split("-")[0])
    lines[-1] = f"{name},{start}-{blob_size + 500}"
    csv.write_text("\n".join(lines) + "\n")

    data_dir = tmp_path / "data"
    res = run_script(tmp_path, "miniimagenet", DATA_DIR=data_dir, **mini_env(server, meta))
    assert res.returncode != 0
    assert f"test/n01930112/{name}" in res.stderr
    assert f"{start}-{blob_size + 500}" in res.stderr
    assert "IMAGENET_TAR_URL" in res.stderr
    assert not (data_dir / "miniimagenet").exists()
    assert list(data_dir.iterdir()) == []


def test_miniimagenet_server_without_ranges(tmp_path, server, mini_sources):
    meta, _, _ = mini_sources
    server.honor_ranges = False
    data_dir = tmp_path / "data"
    res = run_script(tmp_path, "miniimagenet", DATA_DIR=data_dir, **mini_env(server, meta))
    assert res.returncode != 0
    assert "IMAGENET_TAR_URL" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert list(data_dir.iterdir()) == []


def test_miniimagenet_404(tmp_path, server, mini_sources):
    meta, _, _ = mini_sources
    data_dir = tmp_path / "data"
    url = f"{server.url}/missing.tar"
    res = run_script(tmp_path, "miniimagenet", DATA_DIR=data_dir,
                     IMAGENET_TAR_URL=url, MINIIMAGENET_METADATA=meta)
    assert res.returncode != 0
    line, = res.stderr.strip().splitlines()
    assert url in line and "IMAGENET_TAR_URL" in line and "404" in line
    assert re.search(r"bytes \d+-\d+", line)
    assert list(data_dir.iterdir()) == []


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_missing_metadata(tmp_path, server, make):
    meta = tmp_path / "nowhere" / "miniimagenet"
    if make == "empty":
        meta.mkdir(parents=True)
    data_dir = tmp_path / "data"
    res = run_script(tmp_path, "miniimagenet", DATA_DIR=data_dir,
                     IMAGENET_TAR_URL=f"{server.url}/x.tar", MINIIMAGENET_METADATA=meta)
    assert res.returncode != 0
    assert "MINIIMAGENET_METADATA" in res.stderr
    assert str(meta) in res.stderr
    assert "openai/supervised-reptile" in res.stderr
    assert list(data_dir.iterdir()) == []


# ------------------------------------------------- local IMAGENET_TAR

def test_miniimagenet_from_local_tar(tmp_path, server, mini_tar):
    meta, expected, tar_path = mini_tar
    data_dir = tmp_path / "data"
    # A URL that would answer 404: the local file takes precedence.
    res = run_script(tmp_path, "miniimagenet", DATA_DIR=data_dir, IMAGENET_TAR=tar_path,
                     IMAGENET_TAR_URL=f"{server.url}/missing.tar", MINIIMAGENET_METADATA=meta)
    assert res.returncode == 0, res.stderr
    assert f"reading 4 classes from {tar_path}" in res.stdout
    assert files_under(data_dir / "miniimagenet") == expected
    for subset, classes in MINI_LAYOUT.items():
        assert sorted(p.name for p in (data_dir / "miniimagenet" / subset).iterdir()) == sorted(classes)
    assert sorted(p.name for p in data_dir.iterdir()) == ["miniimagenet"]


def test_local_tar_and_http_give_the_same_tree(tmp_path, server, mini_tar):
    meta, expected, tar_path = mini_tar
    local, remote = tmp_path / "local", tmp_path / "remote"
    res = run_script(tmp_path, "miniimagenet", DATA_DIR=local, IMAGENET_TAR=tar_path,
                     MINIIMAGENET_METADATA=meta)
    assert res.returncode == 0, res.stderr
    res = run_script(tmp_path, "miniimagenet", DATA_DIR=remote, **mini_env(server, meta))
    assert res.returncode == 0, res.stderr
    assert snapshot_tree(local) == snapshot_tree(remote)
    assert files_under(local / "miniimagenet") == expected


@pytest.mark.parametrize("problem", ["missing", "directory", "truncated"])
def test_bad_local_tar_fails_before_any_work(tmp_path, server, mini_tar, problem):
    meta, _, tar_path = mini_tar
    largest_end = max(int(line.rsplit("-", 1)[1])
                      for csv in meta.rglob("*.csv") for line in csv.read_text().split())
    bad = tmp_path / "ILSVRC2012_img_train.tar"
    if problem == "directory":
        bad.mkdir()
    elif problem == "truncated":  # the last byte of the last image is missing
        bad.write_bytes(tar_path.read_bytes()[:largest_end])
    data_dir = tmp_path / "data"
    # Both datasets: the Omniglot download (which would fail, with another
    # message) must not even start.
    res = run_script(tmp_path, DATA_DIR=data_dir, IMAGENET_TAR=bad, MINIIMAGENET_METADATA=meta,
                     OMNIGLOT_URL=f"{server.url}/no/omniglot")
    assert res.returncode != 0
    line, = res.stderr.strip().splitlines()
    assert "IMAGENET_TAR" in line and str(bad) in line
    if problem == "truncated":
        assert f"has {largest_end} bytes" in line and f"up to byte {largest_end}" in line
    assert "omniglot" not in res.stdout
    assert list(data_dir.iterdir()) == []


def test_shipped_metadata():
    # The original's CSVs: 64/16/20 classes. 16 classes are a few images
    # short of 600 in the original too (59,981 images, not 60,000).
    line_re = re.compile(r"(n\d{8})_\d+\.JPEG,(\d+)-(\d+)")
    assert (SHIPPED_METADATA / "LICENSE").is_file()
    assert (SHIPPED_METADATA / "README.md").is_file()
    per_class, ranges, wnids = {}, [], set()
    for subset, n_classes in {"train": 64, "val": 16, "test": 20}.items():
        csvs = sorted((SHIPPED_METADATA / subset).glob("*.csv"))
        assert len(csvs) == n_classes, subset
        for csv in csvs:
            wnids.add(csv.stem)
            lines = csv.read_bytes().decode("ascii").split("\n")
            assert lines.pop() == "", f"{csv} does not end in a newline"
            for line in lines:
                m = line_re.fullmatch(line)
                assert m and m.group(1) == csv.stem, f"{csv}: {line!r}"
                start, end = int(m.group(2)), int(m.group(3))
                assert start <= end, f"{csv}: {line!r}"
                ranges.append((start, end))
            assert len({line.split(",")[0] for line in lines}) == len(lines), csv
            per_class[f"{subset}/{csv.stem}"] = len(lines)
    assert len(wnids) == 100  # no class in two subsets
    assert all(597 <= n <= 600 for n in per_class.values()), per_class
    assert sum(n == 600 for n in per_class.values()) == 84
    assert sum(per_class.values()) == 59981
    # The ranges do not overlap and lie inside the real tar (147897477120 bytes).
    ranges.sort()
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    assert ranges[-1][1] < 147897477120


def test_unknown_argument(tmp_path):
    res = run_script(tmp_path, "cifar", DATA_DIR=tmp_path / "data")
    assert res.returncode != 0
    assert "cifar" in res.stderr
    assert not (tmp_path / "data").exists()


# -------------------------------------------------- interrupted runs

def test_ctrl_c_leaves_nothing_and_a_rerun_completes(tmp_path, server, omniglot_zips):
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({k: str(v) for k, v in omniglot_env(server).items()}, DATA_DIR="data")
    server.delay = 3
    proc = subprocess.Popen(["bash", str(SCRIPT), "omniglot"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=default_sigint)
    assert proc.stdout.readline().startswith("omniglot: downloading")
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert os.listdir(tmp_path / "data") == []
    server.delay = 0
    res = run_script(tmp_path, "omniglot", DATA_DIR="data", **omniglot_env(server))
    assert res.returncode == 0, res.stderr
    assert files_under(tmp_path / "data" / "omniglot") == omniglot_zips


def test_rerun_removes_the_temporary_folder_of_a_killed_run(tmp_path, server, omniglot_zips):
    data = tmp_path / "data"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = data / ".fetch_tmp.KILLED", data / ".fetch_tmp.RUNNING"
    for folder, pid in ((stale, dead.pid), (live, os.getpid())):
        (folder / "omniglot").mkdir(parents=True)
        (folder / "pid").write_text(f"{pid}\n")
    res = run_script(tmp_path, "omniglot", DATA_DIR=data, **omniglot_env(server))
    assert res.returncode == 0, res.stderr
    assert f"removing {stale}, left by an interrupted run" in res.stdout
    assert f"{live} belongs to running process {os.getpid()}; leaving it alone" in res.stdout
    assert sorted(p.name for p in data.iterdir()) == [".fetch_tmp.RUNNING", "omniglot"]


def test_omniglot_small_is_the_real_first_run_subset(tmp_path, server):
    """`omniglot-small` fetches Lake's images_background_small1.zip into data/omniglot_small
    (the real archive from ../shared where it exists, served locally)."""
    import shutil as _shutil
    real = os.path.join(os.path.dirname(SCRIPT), "..", "shared", "data", "omniglot",
                        "images_background_small1.zip")
    if not os.path.exists(real):
        pytest.skip(f"real Omniglot subset not found at {real} (../shared is absent)")
    _shutil.copy(real, server.root / "images_background_small1.zip")
    res = run_script(tmp_path, "omniglot-small", DATA_DIR=tmp_path / "data",
                     OMNIGLOT_URL=server.url)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "data" / "omniglot_small"
    assert "omniglot_small: done, 5 alphabets, 136 characters, 2720 images" in res.stdout
    assert sorted(p.name for p in out.iterdir()) == ["Balinese", "Early_Aramaic", "Greek",
                                                     "Korean", "Latin"]
    assert not (tmp_path / "data" / "omniglot").exists()  # only what was asked for
    assert_no_tmp(tmp_path / "data")
