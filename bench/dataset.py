"""Bench inputs: a fixed slice of the shared Fruits-360 subset, and k-times larger copies of it.

The copies must be new images to fruitlens (it names images by the SHA-256 of their bytes), so
each extra copy is re-encoded with one pixel nudged: same size, same decode cost, a new id. All of
it is written to a temporary folder outside the repository.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

SPLITS = ("Training", "Test")


def dataset_files(source: Path) -> list[Path]:
    """Every image of the subset, sorted by split, class and name (a stable order)."""
    return sorted(
        path
        for split in SPLITS
        if (source / split).is_dir()
        for path in (source / split).rglob("*.jpg")
        if path.is_file()
    )


def pick_slice(files: list[Path], count: int) -> list[Path]:
    """`count` images spread evenly over the sorted list, so every split and class is present."""
    if count >= len(files):
        return list(files)
    step = len(files) / count
    return [files[int(index * step)] for index in range(count)]


def copy_slice(source: Path, target: Path, count: int) -> list[Path]:
    copied = []
    for path in pick_slice(dataset_files(source), count):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        copied.append(destination)
    return copied


def nudged_jpeg(content: bytes, copy: int, tag: bool = False) -> bytes:
    """The same picture re-encoded with its top-left pixel recoloured according to `copy`.

    A change of a level or two can vanish in JPEG quantisation and give identical bytes for
    two copies; a large change of one corner pixel survives it. `tag` also writes the copy
    number as a JPEG comment, for the rare case where even that collides.
    """
    from PIL import Image

    with Image.open(io.BytesIO(content)) as image:
        rgb = image.convert("RGB")
    red, green, blue = rgb.getpixel((0, 0))
    rgb.putpixel((0, 0), ((red + 67 * copy) % 256, (green + 29 * copy) % 256, blue))
    buffer = io.BytesIO()
    extra = {"comment": f"fruitlens bench copy {copy}".encode()} if tag else {}
    rgb.save(buffer, format="JPEG", quality=95, **extra)
    return buffer.getvalue()


def scaled_copy(base: Path, target: Path, factor: int) -> int:
    """`factor` copies of the base slice under target (copy 0 byte-identical); returns files.

    Every written file has a SHA-256 no other file has, so fruitlens sees factor x new images.
    """
    seen: set[str] = set()
    for path in sorted(base.rglob("*.jpg")):
        relative = path.relative_to(base)
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        content = path.read_bytes()
        destination.write_bytes(content)
        seen.add(hashlib.sha256(content).hexdigest())
        for copy in range(1, factor):
            nudged = nudged_jpeg(content, copy)
            if hashlib.sha256(nudged).hexdigest() in seen:
                nudged = nudged_jpeg(content, copy, tag=True)
            digest = hashlib.sha256(nudged).hexdigest()
            if digest in seen:
                raise RuntimeError(f"copy {copy} of {path} collides with another image")
            seen.add(digest)
            (destination.parent / f"{relative.stem}_copy{copy}{relative.suffix}").write_bytes(
                nudged
            )
    return len(seen)
