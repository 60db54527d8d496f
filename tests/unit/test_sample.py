"""The pinned Fruits-360 sample behind `make run`: the manifest, and fetching it for real.

GitHub is not reachable from the test machines, so conftest's file_server (plain HTTP on
127.0.0.1) stands in for raw.githubusercontent.com: it serves the shared dataset's files under
the URL paths the manifest pins (``/<owner>/<repo>/<commit>/<source path>``).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from fruitlens import sample
from fruitlens.sample import GITHUB_RAW_PREFIX, SampleFetchError, SampleFile

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dataset(fruits360: Path) -> Path:
    if not (fruits360 / "MANIFEST.sha256").is_file():
        pytest.skip(f"{fruits360} has no MANIFEST.sha256: not the shared Fruits-360 subset")
    return fruits360


@pytest.fixture(scope="session")
def entries() -> list[SampleFile]:
    return sample.load_manifest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _served_path(entry: SampleFile) -> str:
    return unquote(entry.url[len(GITHUB_RAW_PREFIX) :])


@dataclass
class Mirror:
    """The file server holding four of the sample's files and their manifest: one of each of
    three classes, and a second Kiwi (the download threads start on one folder's files
    together, and that folder does not exist yet)."""

    server: Any
    picked: list[SampleFile]
    manifest: Path

    @property
    def url(self) -> str:
        return str(self.server.url)

    @property
    def root(self) -> Path:
        return Path(self.server.root)

    @property
    def requested(self) -> list[str]:
        return list(self.server.requested)


@pytest.fixture
def mirror(file_server: Any, dataset: Path, entries: list[SampleFile], tmp_path: Path) -> Mirror:
    picked = [
        next(e for e in entries if e.path.startswith("Training/Apple Golden 2/")),
        next(e for e in entries if e.path.startswith("Test/Cherry 1/")),
        *[e for e in entries if e.path.startswith("Training/Kiwi/")][:2],
    ]
    for entry in picked:
        served = file_server.root / _served_path(entry)
        served.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dataset / entry.path, served)
    manifest = tmp_path / "small.tsv"
    manifest.write_text(
        "path\tsha256\tsize\turl\n"
        + "".join(f"{e.path}\t{e.sha256}\t{e.size}\t{e.url}\n" for e in picked)
    )
    return Mirror(file_server, picked, manifest)


def _fetch(mirror: Mirror, dest: Path, **kw: Any) -> Path:
    return sample.fetch_sample(dest, mirror.url, mirror.manifest, **kw)


# --- the pinned list -------------------------------------------------------------------------


def test_manifest_is_small_balanced_and_matches_the_shared_files(
    dataset: Path, entries: list[SampleFile]
) -> None:
    assert len(entries) == 256
    counts: dict[tuple[str, str], int] = {}
    for e in entries:
        split, cls, name = e.path.split("/")
        counts[(split, cls)] = counts.get((split, cls), 0) + 1
        assert name.endswith(".jpg")
        assert e.url.startswith(GITHUB_RAW_PREFIX)
        # Pinned to a full commit hash, never a branch, so the bytes cannot change.
        assert len(e.url[len(GITHUB_RAW_PREFIX) :].split("/")[2]) == 40
        assert " " not in e.url  # URL-quoted
        local = dataset / e.path
        assert local.stat().st_size == e.size
        assert _sha256(local) == e.sha256
    classes = {cls for _, cls in counts}
    assert len(classes) == 8
    assert {counts[("Training", c)] for c in classes} == {24}
    assert {counts[("Test", c)] for c in classes} == {8}
    assert "Apple Golden 2" in classes  # a name with a space and a digit


def test_manifest_generator_is_deterministic(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "regenerated.tsv"
    script = REPO_ROOT / "hack" / "make_sample_manifest.py"
    cmd = [sys.executable, str(script), "--dataset", str(dataset), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    assert out.read_bytes() == sample.DEFAULT_MANIFEST.read_bytes()


def test_unsafe_manifest_path_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"../escape.jpg\t{'0' * 64}\t1\t{GITHUB_RAW_PREFIX}a/b/c/d.jpg\n")
    with pytest.raises(SampleFetchError, match="bad row"):
        sample.fetch_sample(tmp_path / "dest", manifest=bad)
    assert not (tmp_path / "escape.jpg").exists()


# --- fetching --------------------------------------------------------------------------------


def test_fetch_once_then_nothing_and_a_damaged_file_again(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "sample"
    assert _fetch(mirror, dest) == dest
    for e in mirror.picked:
        assert _sha256(dest / e.path) == e.sha256
    assert sorted(mirror.requested) == sorted(f"/{_served_path(e)}" for e in mirror.picked)
    readme = (dest / sample.README_NAME).read_text()
    assert "CC BY-SA 4.0" in readme
    assert "Fruit recognition from images using deep learning" in readme
    assert "https://github.com/htappa/CNN-ImageClassification" in readme
    # The checksum list is in sha256sum format, relative to dest.
    first = (dest / sample.CHECKSUMS_NAME).read_text().splitlines()[0]
    assert first == f"{mirror.picked[0].sha256}  {mirror.picked[0].path}"

    _fetch(mirror, dest)
    assert len(mirror.requested) == len(mirror.picked), "nothing is fetched the second time"

    damaged = mirror.picked[1]
    (dest / damaged.path).write_bytes(b"not a jpeg")
    _fetch(mirror, dest)
    assert mirror.requested[len(mirror.picked) :] == [f"/{_served_path(damaged)}"]
    assert _sha256(dest / damaged.path) == damaged.sha256


def test_a_download_that_does_not_match_its_checksum_is_refused(
    mirror: Mirror, tmp_path: Path
) -> None:
    bad = mirror.picked[2]
    served = mirror.root / _served_path(bad)
    served.write_bytes(bytes(b ^ 0x5A for b in served.read_bytes()))  # same length, other bytes
    dest = tmp_path / "sample"
    with pytest.raises(SampleFetchError, match=f"{bad.path}: .* sha256 is not the pinned one"):
        _fetch(mirror, dest, retries=1)
    assert not (dest / bad.path).exists(), "a file that fails its checksum is never left"


def test_a_missing_file_is_named(mirror: Mirror, tmp_path: Path) -> None:
    gone = mirror.picked[0]
    (mirror.root / _served_path(gone)).unlink()
    with pytest.raises(SampleFetchError, match=f"{gone.path}: HTTP 404"):
        _fetch(mirror, tmp_path / "sample", retries=1)


def test_offline_is_one_clear_line(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--dest", str(tmp_path / "s"), "--manifest", str(mirror.manifest), "--retries", "1"]
    with socket.socket() as unreachable:
        # Bound, never listening: connections are refused, as on a machine without network.
        unreachable.bind(("127.0.0.1", 0))
        argv += ["--base-url", f"http://127.0.0.1:{unreachable.getsockname()[1]}/"]
        assert sample.main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("fruitlens sample: error: cannot reach 127.0.0.1:")
    assert "offline?" in err and "make run DATA=" in err


def test_main_prints_the_cached_folder(
    mirror: Mirror,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FRUITLENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(sample.BASE_URL_ENV, mirror.url)
    assert sample.main(["--manifest", str(mirror.manifest)]) == 0
    out, _ = capsys.readouterr()
    dest = tmp_path / "cache" / "sample"
    assert out.strip() == str(dest.resolve())
    assert all(_sha256(dest / e.path) == e.sha256 for e in mirror.picked)
