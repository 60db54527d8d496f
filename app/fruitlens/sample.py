"""Download the pinned Fruits-360 sample that `make run` uses when no DATA= is given.

The sample is 256 images (8 classes x (24 Training + 8 Test)) listed with sha256, size and a
commit-pinned raw.githubusercontent.com URL in ``data/sample_manifest.tsv``. pooch fetches
them once into a cache outside the repository (``$FRUITLENS_CACHE/sample``), checks every
file's sha256, retries failed downloads, and on later calls re-checks the files it has and
downloads nothing. A file that does not match its checksum is never left in place.

    python -m fruitlens.sample [--dest DIR] [--base-url URL]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from fruitlens import paths
from fruitlens.errors import UsageError

GITHUB_RAW_PREFIX = "https://raw.githubusercontent.com/"
BASE_URL_ENV = "FRUITLENS_SAMPLE_BASE_URL"
DEFAULT_MANIFEST = Path(__file__).resolve().parent / "data" / "sample_manifest.tsv"
# Leading underscores: Spark's listing skips such files, so the job sees only the images.
README_NAME = "_README.txt"
CHECKSUMS_NAME = "_MANIFEST.sha256"
# 256 small files: the time goes to round trips, so a few run side by side.
WORKERS = 8

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
    """The sample could not be downloaded or verified; the message is one line."""


@dataclass(frozen=True)
class SampleFile:
    """One manifest row: where the file goes under dest, what it must hash to, where it is."""

    path: str
    sha256: str
    size: int
    url: str


def default_dest() -> Path:
    return paths.cache_dir() / "sample"


def load_manifest(manifest: Path = DEFAULT_MANIFEST) -> list[SampleFile]:
    """Read the tab-separated manifest (path, sha256, size, url); '#' lines are comments."""
    entries = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#") or line.startswith("path\t"):
            continue
        fields = line.split("\t")
        parts = PurePosixPath(fields[0]).parts
        # A manifest must not be able to write outside dest.
        if len(fields) != 4 or fields[0].startswith("/") or ".." in parts or "\\" in fields[0]:
            raise SampleFetchError(f"{manifest}:{number}: bad row {line!r}")
        entries.append(SampleFile(fields[0], fields[1], int(fields[2]), fields[3]))
    return entries


def resolve_url(url: str, base_url: str | None) -> str:
    """Point a manifest URL at a mirror: base_url replaces the raw.githubusercontent prefix."""
    if not base_url or not url.startswith(GITHUB_RAW_PREFIX):
        return url
    return base_url.rstrip("/") + "/" + url[len(GITHUB_RAW_PREFIX) :]


def _sources(entries: Sequence[SampleFile]) -> list[str]:
    found = {
        "  https://github.com/{}/{} ({})".format(*e.url[len(GITHUB_RAW_PREFIX) :].split("/")[:3])
        for e in entries
        if e.url.startswith(GITHUB_RAW_PREFIX)
    }
    return sorted(found) or ["  (see the manifest)"]


def _explain(exc: Exception, entry: SampleFile, url: str) -> str:
    """One line saying what failed and what to do; requests' own messages run to pages."""
    import requests

    host = urlsplit(url).netloc
    if isinstance(exc, ValueError):  # pooch: the downloaded bytes do not hash as pinned
        return f"{entry.path}: downloaded from {host} but its sha256 is not the pinned one"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"{entry.path}: HTTP {exc.response.status_code} from {url}"
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return (
            f"cannot reach {host} ({type(exc).__name__}); offline? Run on your own images with "
            f"`make run DATA=<folder>`, or set {BASE_URL_ENV} to a mirror"
        )
    return f"{entry.path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def fetch_sample(
    dest: Path | None = None,
    base_url: str | None = None,
    manifest: Path = DEFAULT_MANIFEST,
    retries: int = 3,
    timeout: float = 30,
) -> Path:
    """Download the pinned sample into ``dest`` (once) and return ``dest``.

    ``base_url`` (or $FRUITLENS_SAMPLE_BASE_URL) replaces ``https://raw.githubusercontent.com/``
    for mirrors. Raises SampleFetchError, one line naming the file or the host, on failure.
    """
    import pooch

    entries = load_manifest(manifest)
    base_url = base_url or os.environ.get(BASE_URL_ENV) or None
    dest = Path(dest or default_dest()).expanduser()
    urls = {e.path: resolve_url(e.url, base_url) for e in entries}
    fetcher = pooch.create(
        path=dest,
        base_url="",
        registry={e.path: f"sha256:{e.sha256}" for e in entries},
        urls=urls,
        retry_if_failed=max(0, retries - 1),
    )
    downloader = pooch.HTTPDownloader(timeout=timeout, progressbar=False)

    def fetch(entry: SampleFile) -> None:
        try:
            fetcher.fetch(entry.path, downloader=downloader)
        except Exception as exc:
            raise SampleFetchError(_explain(exc, entry, urls[entry.path])) from exc

    pooch.get_logger().setLevel("WARNING")  # one line per file otherwise
    # Made here, not by pooch: it checks that a file's folder exists, then calls os.makedirs
    # without exist_ok, and the threads start on the files of one new class folder together,
    # so on a cold cache a thread that lost that race raised FileExistsError.
    for folder in {(dest / e.path).parent for e in entries}:
        folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(fetch, entry) for entry in entries]
        try:
            for future in futures:
                future.result()
        except SampleFetchError:
            # Offline or a broken mirror: the first error is the answer, not 256 of them.
            pool.shutdown(cancel_futures=True)
            raise
    (dest / CHECKSUMS_NAME).write_text("".join(f"{e.sha256}  {e.path}\n" for e in entries))
    (dest / README_NAME).write_text(
        ATTRIBUTION.format(checksums=CHECKSUMS_NAME, sources="\n".join(_sources(entries)))
    )
    return dest


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
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help=argparse.SUPPRESS)
    parser.add_argument("--retries", type=int, default=3, help="attempts per file (default 3)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="socket timeout in seconds (default 30)"
    )
    args = parser.parse_args(argv)
    try:
        path = fetch_sample(args.dest, args.base_url, args.manifest, args.retries, args.timeout)
    except SampleFetchError as err:
        print(f"fruitlens sample: error: {err}", file=sys.stderr)
        return 1
    print(path.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
