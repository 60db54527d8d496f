"""Datasets as plain Python values, for exact equality between runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def rows(frame: pd.DataFrame) -> list[tuple]:
    """A dataset's rows as plain tuples (ML vectors as tuples of floats), for exact equality."""

    def plain(value):
        if isinstance(value, dict):
            return tuple((key, plain(item)) for key, item in sorted(value.items()))
        if hasattr(value, "tolist"):
            return tuple(value.tolist()) if hasattr(value, "__len__") else value.tolist()
        return value

    return [tuple(plain(value) for value in row) for row in frame.itertuples(index=False)]
