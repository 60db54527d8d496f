"""Where fruitlens keeps its caches and finds the shared dataset; nothing here touches data."""

from __future__ import annotations

import os
from pathlib import Path

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
