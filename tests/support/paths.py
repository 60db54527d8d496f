"""Where the repository and the shared Fruits-360 subset are, and stable slices of it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def dataset_root() -> Path:
    default = REPO.parent / "shared" / "datasets" / "fruits360"
    return Path(os.environ.get("FRUITLENS_DATASET", default))


def copy_slice(
    source: Path,
    target: Path,
    per_class: dict[str, int],
    classes: int | None = None,
    every: int = 1,
) -> Path:
    """Copy the first N images of each class of each split (sorted, so the slice is stable),
    from every `every`-th class (sorted) up to `classes` of them."""
    for split, count in per_class.items():
        class_dirs = sorted(p for p in (source / split).iterdir() if p.is_dir())
        for class_dir in class_dirs[::every][:classes]:
            destination = target / split / class_dir.name
            destination.mkdir(parents=True, exist_ok=True)
            for image in sorted(class_dir.iterdir())[:count]:
                shutil.copyfile(image, destination / image.name)
    return target
