"""SHA-256, the one checksum fruitlens writes: content ids, weights, run.json's file digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

_BLOCK = 1 << 20


def sha256(source: bytes | Path) -> str:
    """Hex SHA-256 of bytes, or of a file's content read in 1 MiB blocks (memory stays flat)."""
    if not isinstance(source, Path):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    with source.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
