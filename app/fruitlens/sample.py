"""Download the pinned Fruits-360 sample that `make run` uses when no DATA= is given.

The sample is 256 images (8 classes x (24 Training + 8 Test)) listed with sha256, size and a
commit-pinned raw.githubusercontent.com URL in ``data/sample_manifest.tsv``. It is fetched
once into a cache outside the repository (``$FRUITLENS_CACHE/sample``), verified file by file,
and reused afterwards: a second call finds every file present with the right checksum and
downloads nothing.

Only the standard library is used so the fetch works before (and without) the heavy job
dependencies being importable.

    python -m fruitlens.sample --dest DIR [--base-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fruitlens import __version__, checksum, paths
from fruitlens.errors import UsageError

try:  # POSIX only; without it concurrent fetches into one cache are simply not serialised.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

GITHUB_RAW_PREFIX = "https://raw.githubusercontent.com/"
BASE_URL_ENV = "FRUITLENS_SAMPLE_BASE_URL"
DEFAULT_MANIFEST = Path(__file__).resolve().parent / "data" / "sample_manifest.tsv"
COMPLETE_MARKER = ".complete"
# Leading underscores: Spark's listing skips such files, so the job sees only the images.
README_NAME = "_README.txt"
CHECKSUMS_NAME = "_MANIFEST.sha256"
PART_SUFFIX = ".part"
_CHUNK = 64 * 1024
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# 4xx answers will not change on retry (wrong mirror, missing file); 408/429 are transient.
_RETRYABLE_4XX = {408, 425, 429}

ATTRIBUTION = """\
Fruits-360 sample for fruitlens
===============================

These images are a small sample of the Fruits-360 dataset by Mihai Oltean and Horea
Muresan. They are redistributed under the Creative Commons Attribution-ShareAlike 4.0
International (CC BY-SA 4.0) license (https://creativecommons.org/licenses/by-sa/4.0/).
Any derivative of this folder must keep that license and this attribution. (The older
GitHub releases that some of the source copies came from were published by the authors
under the MIT license. The images are the same files, and the dataset is currently
distributed under CC BY-SA 4.0.)

Please cite:

  Horea Muresan, Mihai Oltean, "Fruit recognition from images using deep learning",
  Acta Univ. Sapientiae, Informatica Vol. 10, Issue 1, pp. 26-42, 2018.

Dataset home: https://github.com/fruits-360 (earlier at
https://github.com/Horea94/Fruit-Images-Dataset) and
https://www.kaggle.com/datasets/moltean/fruits.

Each image was downloaded from a public GitHub copy of the dataset at a pinned commit and
checked against its SHA-256 (see {checksums}; `sha256sum -c {checksums}` re-checks them).
Source repositories (commit):
{sources}
"""


class SampleFetchError(UsageError):
    """The sample could not be downloaded or verified."""


@dataclass(frozen=True)
class SampleFile:
    """One manifest row: where the file goes under dest, what it must hash to, where it is."""

    path: str
    sha256: str
    size: int
    url: str


def default_dest() -> Path:
    """``$FRUITLENS_CACHE/sample``, with FRUITLENS_CACHE defaulting to ~/.cache/fruitlens."""
    return paths.cache_dir() / "sample"


def _check_relative(path: str, where: str) -> None:
    # A manifest (possibly user-supplied) must not be able to write outside dest.
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or ".." in p.parts or "\\" in path:
        raise SampleFetchError(f"{where}: unsafe path {path!r} (must be relative, without '..')")


def load_manifest(manifest: Path | None = None) -> list[SampleFile]:
    """Read the tab-separated manifest (path, sha256, size, url); '#' lines are comments."""
    manifest = manifest or DEFAULT_MANIFEST
    entries: list[SampleFile] = []
    seen: set[str] = set()
    header_seen = False
    for lineno, raw in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        fields = raw.split("\t")
        where = f"{manifest}:{lineno}"
        if not header_seen:
            header_seen = True
            if fields[:4] == ["path", "sha256", "size", "url"]:
                continue
        if len(fields) != 4:
            raise SampleFetchError(f"{where}: expected 4 tab-separated fields, got {len(fields)}")
        path, sha, size, url = fields
        _check_relative(path, where)
        if not _SHA256_RE.match(sha):
            raise SampleFetchError(f"{where}: bad sha256 {sha!r}")
        if not size.isdigit():
            raise SampleFetchError(f"{where}: bad size {size!r}")
        if path in seen:
            raise SampleFetchError(f"{where}: duplicate path {path!r}")
        seen.add(path)
        entries.append(SampleFile(path, sha, int(size), url))
    if not entries:
        raise SampleFetchError(f"{manifest}: no files listed")
    return entries


def resolve_url(url: str, base_url: str | None) -> str:
    """Point a manifest URL at a mirror: base_url replaces the raw.githubusercontent prefix."""
    if not base_url:
        return url
    if not url.startswith(GITHUB_RAW_PREFIX):
        return url
    return base_url.rstrip("/") + "/" + url[len(GITHUB_RAW_PREFIX) :]


def _is_valid(path: Path, entry: SampleFile) -> bool:
    # The size test first: it rejects truncated files without reading them.
    try:
        if path.stat().st_size != entry.size:
            return False
    except FileNotFoundError:
        return False
    return checksum.sha256(path) == entry.sha256


class _Progress:
    """Thread-safe 'files done/total' lines on stderr, about ten per run plus the last one."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.done = 0
        self.downloaded = 0
        self.quiet = quiet
        self.step = max(1, total // 10)
        self._lock = threading.Lock()

    def file_done(self, downloaded: bool) -> None:
        with self._lock:
            self.done += 1
            self.downloaded += int(downloaded)
            if not self.quiet and (self.done % self.step == 0 or self.done == self.total):
                print(
                    f"fruitlens sample: {self.done}/{self.total} files ready "
                    f"({self.downloaded} downloaded)",
                    file=sys.stderr,
                    flush=True,
                )


class _Retry(Exception):
    """A transient failure of one attempt; the message ends up in the final error."""


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"fruitlens/{__version__} (+sample fetch)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)


def _download_once(url: str, part: Path, entry: SampleFile, timeout: float) -> None:
    """One attempt: complete ``part`` (resuming it when the server honours Range)."""
    offset = part.stat().st_size if part.exists() else 0
    if offset > entry.size:
        # Longer than the file can be: garbage from some other download.
        part.unlink()
        offset = 0
    if offset == entry.size:
        return  # Already complete; the caller's checksum decides whether to keep it.
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # The server rejects our range (its copy differs in length): start again.
            part.unlink(missing_ok=True)
            raise _Retry(f"HTTP 416 for range {offset}-; restarting") from err
        if 400 <= err.code < 500 and err.code not in _RETRYABLE_4XX:
            raise SampleFetchError(
                f"{entry.path}: HTTP {err.code} {err.reason} from {url}"
            ) from err
        raise _Retry(f"HTTP {err.code} {err.reason}") from err
    with resp:
        if offset and resp.status == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                # A 206 for some other range cannot be appended safely.
                part.unlink(missing_ok=True)
                raise _Retry(f"unexpected Content-Range {content_range!r} for offset {offset}")
            mode = "ab"
            written = offset
        elif resp.status == 200:
            # No Range support (or no partial file): the body is the whole file.
            mode = "wb"
            written = 0
        else:
            raise _Retry(f"unexpected HTTP status {resp.status}")
        with part.open(mode) as fh:
            while True:
                block = resp.read(_CHUNK)
                if not block:
                    break
                written += len(block)
                if written > entry.size:
                    # Longer than pinned means wrong content; stop rather than stream an
                    # unbounded body to disk.
                    fh.close()
                    part.unlink(missing_ok=True)
                    raise _Retry(f"body longer than the pinned {entry.size} bytes")
                fh.write(block)
        if written < entry.size:
            # A dropped connection can look like a normal end of body (http.client does not
            # always raise IncompleteRead). Keep the .part so the next attempt resumes it.
            raise _Retry(f"connection closed after {written} of {entry.size} bytes")


def _fetch_file(
    entry: SampleFile,
    dest: Path,
    base_url: str | None,
    retries: int,
    timeout: float,
    backoff: float,
) -> bool:
    """Make ``dest/entry.path`` valid. Returns True if it had to be downloaded."""
    target = dest / entry.path
    if _is_valid(target, entry):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    # An invalid file is never kept: the job must not read stale or damaged images.
    target.unlink(missing_ok=True)
    part = target.with_name(target.name + PART_SUFFIX)
    url = resolve_url(entry.url, base_url)
    problems: list[str] = []
    for attempt in range(1, max(1, retries) + 1):
        if attempt > 1 and backoff > 0:
            time.sleep(backoff * (attempt - 1))
        try:
            _download_once(url, part, entry, timeout)
        except _Retry as err:
            problems.append(f"attempt {attempt}: {err}")
            continue
        except (OSError, http.client.HTTPException) as err:
            # Timeouts, refused/reset connections, short bodies. A partial .part is kept so
            # the next attempt (or the next run) resumes it with a Range request.
            problems.append(f"attempt {attempt}: {type(err).__name__}: {err}")
            continue
        actual = checksum.sha256(part) if part.exists() else checksum.sha256(b"")
        if actual == entry.sha256:
            # Atomic: the target path holds either nothing or the verified file.
            os.replace(part, target)
            return True
        part.unlink(missing_ok=True)
        problems.append(
            f"attempt {attempt}: checksum mismatch: expected sha256 {entry.sha256}, got {actual}"
        )
    raise SampleFetchError(
        f"could not download {entry.path} from {url} after {max(1, retries)} attempt(s): "
        + "; ".join(problems)
    )


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    # Two `make run`s sharing one cache would otherwise write the same .part files.
    if fcntl is None:
        yield
        return
    with (dest / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _sources(entries: Sequence[SampleFile]) -> list[str]:
    found: set[str] = set()
    for e in entries:
        if e.url.startswith(GITHUB_RAW_PREFIX):
            owner, repo, commit = e.url[len(GITHUB_RAW_PREFIX) :].split("/")[:3]
            found.add(f"  https://github.com/{owner}/{repo} ({commit})")
    return sorted(found) or ["  (see the manifest)"]


def fetch_sample(
    dest: Path,
    base_url: str | None = None,
    manifest: Path | None = None,
    retries: int = 3,
    timeout: float = 30,
    *,
    backoff: float = 1.0,
    workers: int = 8,
    quiet: bool = False,
) -> Path:
    """Download the pinned sample into ``dest`` (once) and return ``dest``.

    Files already present with the right sha256 are kept; missing or invalid ones are
    downloaded (resuming ``<file>.part`` with an HTTP Range request where possible) and
    verified before being moved into place. ``base_url`` (or $FRUITLENS_SAMPLE_BASE_URL)
    replaces ``https://raw.githubusercontent.com/`` for mirrors. When every file is valid,
    ``dest/.complete`` records the manifest's sha256. Raises SampleFetchError naming the
    file when one cannot be fetched or never matches its checksum.
    """
    manifest = manifest or DEFAULT_MANIFEST
    entries = load_manifest(manifest)
    manifest_sha = checksum.sha256(manifest)
    base_url = base_url or os.environ.get(BASE_URL_ENV) or None
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    progress = _Progress(len(entries), quiet)

    def one(entry: SampleFile) -> None:
        progress.file_done(_fetch_file(entry, dest, base_url, retries, timeout, backoff))

    with _locked(dest):
        marker = dest / COMPLETE_MARKER
        # Invalidate first: if anything below fails, no stale marker claims completeness.
        marker.unlink(missing_ok=True)
        # Threads because the work is network latency (256 small files), not CPU.
        errors: list[SampleFetchError] = []
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(one, e) for e in entries]
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                try:
                    future.result()
                except SampleFetchError as err:
                    if not errors:
                        # Fail fast: offline or a broken mirror would otherwise cost every
                        # file its full retry budget. Files in flight still finish and are kept.
                        for f in futures:
                            f.cancel()
                    errors.append(err)
        if errors:
            more = f" ({len(errors) - 1} other file(s) failed too)" if len(errors) > 1 else ""
            raise SampleFetchError(f"{errors[0]}{more}") from errors[0]
        _write_text_atomic(
            dest / CHECKSUMS_NAME,
            "".join(f"{e.sha256}  {e.path}\n" for e in entries),
        )
        _write_text_atomic(
            dest / README_NAME,
            ATTRIBUTION.format(checksums=CHECKSUMS_NAME, sources="\n".join(_sources(entries))),
        )
        _write_text_atomic(
            marker,
            f"manifest_sha256 {manifest_sha}\nfiles {len(entries)}\n",
        )
    return dest


def is_complete(dest: Path, manifest: Path | None = None) -> bool:
    """Cheap check: does ``dest/.complete`` name this manifest? (Files are not re-hashed.)"""
    marker = Path(dest) / COMPLETE_MARKER
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return f"manifest_sha256 {checksum.sha256(manifest or DEFAULT_MANIFEST)}\n" in text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fruitlens.sample",
        description="Download the pinned Fruits-360 sample (256 images, CC BY-SA 4.0) once, "
        "verify every file's sha256, and print the folder it is in.",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="target folder (default: $FRUITLENS_CACHE/sample, i.e. ~/.cache/fruitlens/sample)",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help=f"mirror replacing {GITHUB_RAW_PREFIX} (default: ${BASE_URL_ENV})",
    )
    parser.add_argument("--manifest", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--retries", type=int, default=3, help="attempts per file (default 3)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="socket timeout in seconds (default 30)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    dest = args.dest if args.dest is not None else default_dest()
    try:
        path = fetch_sample(
            dest,
            base_url=args.base_url,
            manifest=args.manifest,
            retries=args.retries,
            timeout=args.timeout,
            quiet=args.quiet,
        )
    except SampleFetchError as err:
        print(f"fruitlens sample: error: {err}", file=sys.stderr)
        return 1
    print(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
