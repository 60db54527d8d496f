"""Where fruitlens keeps its caches and finds the shared dataset; nothing here touches data."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Downloads (jars, weights, the sample) live outside the repository and survive clones."""
    return Path(
        os.environ.get("FRUITLENS_CACHE") or Path.home() / ".cache" / "fruitlens"
    ).expanduser()


def shared_dataset() -> Path:
    """The Fruits-360 subset used by the tests and the demo; FRUITLENS_DATASET overrides it."""
    default = REPO_ROOT.parent / "shared" / "datasets" / "fruits360"
    return Path(os.environ.get("FRUITLENS_DATASET", default))


def is_s3(uri: str) -> bool:
    return uri.startswith(("s3a://", "s3://"))


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(part.strip("/") for part in parts)])


def is_hidden(relative: str) -> bool:
    """Spark (and Hadoop) skip names starting with '.' or '_' anywhere in the path."""
    return any(part.startswith((".", "_")) for part in PurePosixPath(relative).parts)


def normalized(uri: str) -> str:
    """A folder URI in one comparable form: s3://bucket/prefix/ or /absolute/resolved/path/."""
    if is_s3(uri):
        parsed = urlparse(uri)
        prefix = parsed.path.strip("/")
        return f"s3://{parsed.netloc}/" + (f"{prefix}/" if prefix else "")
    local = uri.removeprefix("file://").removeprefix("file:")
    return str(Path(local).resolve()).rstrip("/") + "/"


def inside(child: str, parent: str) -> bool:
    """Whether `child` is `parent` or lies under it (symbolic links and `..` resolved)."""
    return normalized(child).startswith(normalized(parent))
