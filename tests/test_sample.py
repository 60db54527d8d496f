"""Tests for fruitlens.sample: the pinned Fruits-360 sample download.

GitHub is not reachable from the test machines, so a real HTTP server on 127.0.0.1 stands in
for raw.githubusercontent.com. It serves the shared dataset's files under the URL paths the
manifest pins (``/<owner>/<repo>/<commit>/<source path>``) and can be told to corrupt, truncate,
hang on, or ignore Range requests for particular files.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from fruitlens import sample
from fruitlens.sample import GITHUB_RAW_PREFIX, SampleFetchError, SampleFile, fetch_sample

REPO_ROOT = Path(__file__).resolve().parents[1]


def _dataset_dir() -> Path:
    env = os.environ.get("FRUITLENS_DATASET")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "datasets" / "fruits360"


@pytest.fixture(scope="session")
def dataset() -> Path:
    root = _dataset_dir()
    if not (root / "MANIFEST.sha256").is_file():
        pytest.skip(
            f"shared Fruits-360 subset not found at {root} (set FRUITLENS_DATASET); "
            "the sample fetcher tests serve its files"
        )
    return root


@pytest.fixture(scope="session")
def entries() -> list[SampleFile]:
    return sample.load_manifest()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _url_key(url: str) -> str:
    """What the fake server sees for a manifest URL: the unquoted path after the prefix."""
    assert url.startswith(GITHUB_RAW_PREFIX)
    return unquote(url[len(GITHUB_RAW_PREFIX) :])


@dataclass
class FakeRawGitHub:
    """State shared with the request handler; tests flip the behaviour sets."""

    files: dict[str, Path]
    base_url: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    corrupt: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)
    truncate_once: set[str] = field(default_factory=set)
    ignore_range: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def key_for(self, entry: SampleFile) -> str:
        return _url_key(entry.url)

    def hits(self, entry: SampleFile) -> list[str | None]:
        """The Range header (or None) of every request for one file."""
        key = self.key_for(entry)
        with self.lock:
            return [rng for path, rng in self.requests if path == key]


def _make_handler(state: FakeRawGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output clean

        def do_GET(self) -> None:
            key = unquote(urlsplit(self.path).path).lstrip("/")
            range_header = self.headers.get("Range")
            with state.lock:
                state.requests.append((key, range_header))
                truncate = key in state.truncate_once
                state.truncate_once.discard(key)
            if key in state.hang:
                # Never answer: the client's timeout must fire. Released at teardown.
                state.release.wait(10)
                self.close_connection = True
                return
            local = state.files.get(key)
            if local is None:
                self.send_error(404)
                return
            data = local.read_bytes()
            if key in state.corrupt:
                # Same length, different bytes: only the checksum can catch it.
                data = bytes(b ^ 0x5A for b in data)
            start = 0
            if range_header and not state.ignore_range:
                assert range_header.startswith("bytes=") and range_header.endswith("-")
                start = int(range_header[len("bytes=") : -1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if truncate:
                # Promise the whole body, send half, drop the connection.
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server(dataset: Path, entries: list[SampleFile]) -> Iterator[FakeRawGitHub]:
    state = FakeRawGitHub(files={_url_key(e.url): dataset / e.path for e in entries})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    # A short poll interval keeps teardown (shutdown) fast.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def small(tmp_path: Path, entries: list[SampleFile]) -> tuple[Path, list[SampleFile]]:
    """A 3-file manifest (one per class, names with spaces and digits) for the fault tests."""
    picked = [
        next(e for e in entries if e.path.startswith("Training/Apple Golden 2/")),
        next(e for e in entries if e.path.startswith("Test/Cherry 1/")),
        next(e for e in entries if e.path.startswith("Training/Kiwi/")),
    ]
    path = tmp_path / "small.tsv"
    lines = ["path\tsha256\tsize\turl"] + [
        f"{e.path}\t{e.sha256}\t{e.size}\t{e.url}" for e in picked
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, picked


def _fetch(server: FakeRawGitHub, dest: Path, manifest: Path | None = None, **kw: object) -> Path:
    kw.setdefault("backoff", 0)
    kw.setdefault("quiet", True)
    return fetch_sample(dest, base_url=server.base_url, manifest=manifest, **kw)  # type: ignore[arg-type]


def _leftovers(dest: Path) -> list[Path]:
    return sorted(p for p in dest.rglob("*") if p.name.endswith((".part", ".tmp")))


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
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "make_sample_manifest.py"),
            "--dataset",
            str(dataset),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == sample.DEFAULT_MANIFEST.read_bytes()


def test_default_dest_is_in_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRUITLENS_CACHE", str(tmp_path / "cache"))
    assert sample.default_dest() == tmp_path / "cache" / "sample"
    monkeypatch.delenv("FRUITLENS_CACHE")
    assert sample.default_dest() == Path.home() / ".cache" / "fruitlens" / "sample"


def test_unsafe_manifest_path_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"../escape.jpg\t{'0' * 64}\t1\t{GITHUB_RAW_PREFIX}a/b/c/d.jpg\n")
    with pytest.raises(SampleFetchError, match="unsafe path"):
        fetch_sample(tmp_path / "dest", manifest=bad, quiet=True)
    assert not (tmp_path / "escape.jpg").exists()


# --- fetching --------------------------------------------------------------------------------


def test_fetch_all_then_second_fetch_downloads_nothing(
    server: FakeRawGitHub, entries: list[SampleFile], tmp_path: Path
) -> None:
    dest = tmp_path / "sample"
    assert _fetch(server, dest) == dest
    assert len(server.requests) == len(entries)
    for e in entries:
        assert _sha256(dest / e.path) == e.sha256
    assert _leftovers(dest) == []
    manifest_sha = _sha256(sample.DEFAULT_MANIFEST)
    assert f"manifest_sha256 {manifest_sha}" in (dest / ".complete").read_text()
    assert sample.is_complete(dest)
    readme = (dest / sample.README_NAME).read_text()
    assert "CC BY-SA 4.0" in readme
    assert "Fruit recognition from images using deep learning" in readme
    assert "https://github.com/htappa/CNN-ImageClassification" in readme
    # The checksum list is in sha256sum format, relative to dest.
    first = (dest / sample.CHECKSUMS_NAME).read_text().splitlines()[0]
    assert first == f"{entries[0].sha256}  {entries[0].path}"

    _fetch(server, dest)
    assert len(server.requests) == len(entries)  # nothing fetched the second time


def test_a_damaged_local_file_is_fetched_again(
    server: FakeRawGitHub, small: tuple[Path, list[SampleFile]], tmp_path: Path
) -> None:
    manifest, picked = small
    dest = tmp_path / "sample"
    _fetch(server, dest, manifest)
    (dest / picked[1].path).write_bytes(b"not a jpeg")
    server.requests.clear()
    _fetch(server, dest, manifest)
    assert [k for k, _ in server.requests] == [server.key_for(picked[1])]
    assert _sha256(dest / picked[1].path) == picked[1].sha256


def test_base_url_from_environment(
    server: FakeRawGitHub,
    small: tuple[Path, list[SampleFile]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest, picked = small
    monkeypatch.setenv("FRUITLENS_SAMPLE_BASE_URL", server.base_url)
    dest = fetch_sample(tmp_path / "s", manifest=manifest, quiet=True)
    assert len(server.requests) == len(picked)
    assert all(_sha256(dest / e.path) == e.sha256 for e in picked)


def test_corrupt_download_is_rejected_and_nothing_bad_is_left(
    server: FakeRawGitHub, small: tuple[Path, list[SampleFile]], tmp_path: Path
) -> None:
    manifest, picked = small
    bad = picked[-1]
    server.corrupt.add(server.key_for(bad))
    dest = tmp_path / "sample"
    with pytest.raises(SampleFetchError) as info:
        # One worker and the bad file last: the good ones are done before the failure
        # cancels what is still queued, so the assertions below do not race.
        _fetch(server, dest, manifest, retries=2, workers=1)
    message = str(info.value)
    assert bad.path in message
    assert f"expected sha256 {bad.sha256}" in message
    wrong = hashlib.sha256(
        bytes(b ^ 0x5A for b in (server.files[server.key_for(bad)].read_bytes()))
    ).hexdigest()
    assert f"got {wrong}" in message
    assert len(server.hits(bad)) == 2  # retried, then gave up
    assert not (dest / bad.path).exists()
    assert _leftovers(dest) == []
    assert not (dest / ".complete").exists()
    # The good files were still fetched and verified, so a later run only needs the bad one.
    for e in picked[:-1]:
        assert _sha256(dest / e.path) == e.sha256


def test_partial_part_file_is_resumed_with_range(
    server: FakeRawGitHub, small: tuple[Path, list[SampleFile]], tmp_path: Path
) -> None:
    manifest, picked = small
    entry = picked[1]
    dest = tmp_path / "sample"
    part = dest / (entry.path + ".part")
    part.parent.mkdir(parents=True)
    half = entry.size // 2
    part.write_bytes(server.files[server.key_for(entry)].read_bytes()[:half])
    _fetch(server, dest, manifest)
    assert server.hits(entry) == [f"bytes={half}-"]
    assert _sha256(dest / entry.path) == entry.sha256
    assert not part.exists()


def test_dropped_connection_is_resumed_on_retry(
    server: FakeRawGitHub, small: tuple[Path, list[SampleFile]], tmp_path: Path
) -> None:
    manifest, picked = small
    entry = picked[2]
    server.truncate_once.add(server.key_for(entry))
    dest = tmp_path / "sample"
    _fetch(server, dest, manifest)
    hits = server.hits(entry)
    assert hits[0] is None
    assert hits[1] == f"bytes={entry.size // 2}-"
    assert _sha256(dest / entry.path) == entry.sha256


def test_server_without_range_support_restarts_the_download(
    server: FakeRawGitHub, small: tuple[Path, list[SampleFile]], tmp_path: Path
) -> None:
    manifest, picked = small
    entry = picked[0]
    server.ignore_range = True
    dest = tmp_path / "sample"
    part = dest / (entry.path + ".part")
    part.parent.mkdir(parents=True)
    # Junk that would corrupt the file if the 200 body were appended to it.
    part.write_bytes(b"\0" * 100)
    _fetch(server, dest, manifest)
    assert server.hits(entry) == ["bytes=100-"]  # asked to resume, got a 200, started over
    assert _sha256(dest / entry.path) == entry.sha256


def test_server_that_never_answers_gives_a_clear_error(
    server: FakeRawGitHub, small: tuple[Path, list[SampleFile]], tmp_path: Path
) -> None:
    manifest, picked = small
    stuck = picked[2]
    server.hang.add(server.key_for(stuck))
    started = time.monotonic()
    with pytest.raises(SampleFetchError) as info:
        _fetch(server, tmp_path / "sample", manifest, retries=2, timeout=0.3)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert stuck.path in message
    assert "after 2 attempt(s)" in message
    assert "timed out" in message.lower()
    assert len(server.hits(stuck)) == 2


def test_missing_file_fails_without_pointless_retries(
    server: FakeRawGitHub, small: tuple[Path, list[SampleFile]], tmp_path: Path
) -> None:
    manifest, picked = small
    gone = picked[0]
    del server.files[server.key_for(gone)]
    with pytest.raises(SampleFetchError, match=r"HTTP 404") as info:
        _fetch(server, tmp_path / "sample", manifest, retries=3)
    assert gone.path in str(info.value)
    assert len(server.hits(gone)) == 1


def test_first_failure_cancels_the_queued_downloads(
    server: FakeRawGitHub, entries: list[SampleFile], tmp_path: Path
) -> None:
    # A mirror that has none of the files (or no network) must not cost every one of the 256
    # files its full retry budget before the error is reported.
    server.files.clear()
    with pytest.raises(SampleFetchError, match=r"HTTP 404"):
        _fetch(server, tmp_path / "sample", workers=2)
    assert len(server.requests) < 20


def test_main_prints_the_sample_folder(
    server: FakeRawGitHub,
    small: tuple[Path, list[SampleFile]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest, picked = small
    dest = tmp_path / "sample"
    argv = ["--dest", str(dest), "--base-url", server.base_url, "--manifest", str(manifest)]
    assert sample.main(argv) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(dest.resolve())
    assert f"{len(picked)}/{len(picked)} files ready" in err  # progress on stderr

    server.corrupt.add(server.key_for(picked[0]))
    (dest / picked[0].path).unlink()
    assert sample.main([*argv, "--retries", "1", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "error:" in err and picked[0].path in err
