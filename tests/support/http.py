"""A folder served over HTTP on loopback (the file_server fixture), standing in for Maven
Central or GitHub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FileServer:
    root: Path
    url: str
    requested: list[str]  # the path of every GET, in order
