"""Download build-time artifacts for the image and refuse any whose checksum does not match.

Standard library only: it runs with the base image's /usr/bin/python3 before anything is
installed, so the image needs neither curl nor fruitlens itself to fetch its own inputs.

  fetch.py jars --lock app/fruitlens/data/jars.lock --dest /opt/spark/jars [--repo URL]
  fetch.py file --url URL --dest PATH [--md5 HEX] [--sha256 HEX]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
ATTEMPTS = 3
CHUNK = 1 << 20


class ChecksumError(RuntimeError):
    pass


def download(url: str, dest: Path, expected: dict[str, str]) -> None:
    """Fetch url to dest atomically; every (algorithm -> hex digest) in expected must match."""
    if not expected:
        raise ValueError(f"refusing to fetch {url} without a checksum to verify")
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(1, ATTEMPTS + 1):
        digests = {name: hashlib.new(name) for name in expected}
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    for digest in digests.values():
                        digest.update(chunk)
            for name, want in expected.items():
                got = digests[name].hexdigest()
                if got != want.lower():
                    raise ChecksumError(f"{url}: {name} {got} != expected {want}")
            tmp.chmod(0o644)
            tmp.replace(dest)
            print(f"fetched {dest} ({dest.stat().st_size} bytes, {', '.join(expected)} ok)")
            return
        except ChecksumError:
            tmp.unlink(missing_ok=True)
            raise
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            last_error = exc
            print(f"attempt {attempt}/{ATTEMPTS} for {url} failed: {exc}", file=sys.stderr)
            time.sleep(2 * attempt)
    raise RuntimeError(f"could not download {url}: {last_error}")


def read_lock(lock: Path) -> list[tuple[str, str]]:
    entries = []
    for line in lock.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        sha256, path = line.split()
        entries.append((sha256, path))
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    jars = sub.add_parser("jars", help="every jar listed in a lock file")
    jars.add_argument("--lock", type=Path, required=True)
    jars.add_argument("--dest", type=Path, required=True)
    jars.add_argument("--repo", default=MAVEN_CENTRAL, help="Maven repository base URL")
    one = sub.add_parser("file", help="one file")
    one.add_argument("--url", required=True)
    one.add_argument("--dest", type=Path, required=True)
    one.add_argument("--md5", default="")
    one.add_argument("--sha256", default="")
    args = parser.parse_args(argv)

    if args.command == "jars":
        for sha256, path in read_lock(args.lock):
            url = f"{args.repo.rstrip('/')}/{path}"
            download(url, args.dest / Path(path).name, {"sha256": sha256})
    else:
        expected = {k: v for k, v in (("md5", args.md5), ("sha256", args.sha256)) if v}
        download(args.url, args.dest, expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
