"""PNG plots a person would rather look at than read; each returns the image's bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # batch job: no display, ever

import matplotlib.pyplot as plt
import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fruitlens.outputs import names
from fruitlens.pipeline.reduce import Reduction

SCATTER_POINTS = 5000


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def explained_variance(ratios: Sequence[float], target: float | None) -> bytes:
    cumulative = np.cumsum(ratios)
    components = np.arange(1, len(ratios) + 1)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.bar(components, ratios, color="#9ecae1", label="per component")
    axis.plot(components, cumulative, color="#08519c", marker=".", label="cumulative")
    if target is not None:
        axis.axhline(target, color="#d62728", linestyle="--", label=f"target {target:.0%}")
    axis.set_xlabel("principal component")
    axis.set_ylabel("fraction of variance explained")
    axis.set_ylim(0, 1.02)
    axis.set_title(f"PCA: {len(ratios)} components explain {cumulative[-1]:.1%} of the variance")
    axis.legend(loc="center right")
    return _png(figure)


def pca_scatter(points: np.ndarray, labels: Sequence[str]) -> bytes:
    """First two components, one colour per class; the legend moves outside past 20 classes."""
    classes = sorted(set(labels))
    colours = plt.get_cmap("tab20", max(len(classes), 1))
    figure, axis = plt.subplots(figsize=(10 if len(classes) > 20 else 7, 6))
    label_array = np.asarray(labels)
    for index, name in enumerate(classes):
        mask = label_array == name
        axis.scatter(
            points[mask, 0], points[mask, 1], s=6, alpha=0.7, color=colours(index), label=name
        )
    axis.set_xlabel("PC 1")
    axis.set_ylabel("PC 2")
    axis.set_title(f"Images in the first two principal components ({len(labels)} shown)")
    columns = 1 if len(classes) <= 25 else 2
    axis.legend(markerscale=3, fontsize=7, ncol=columns, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _png(figure)


def confusion_heatmap(matrix: np.ndarray, classes: Sequence[str], accuracy: float) -> bytes:
    """Row-normalised heat map, classes sorted by recall so the weak ones gather at the bottom."""
    size = len(classes)
    square = np.asarray(matrix)[:size, :size].astype(float)
    totals = square.sum(axis=1, keepdims=True)
    normalised = np.divide(square, totals, out=np.zeros_like(square), where=totals > 0)
    order = np.argsort(-np.diag(normalised), kind="stable")
    normalised = normalised[np.ix_(order, order)]
    names = [classes[i] for i in order]
    side = max(6.0, 0.16 * size + 2)
    figure, axis = plt.subplots(figsize=(side + 1.5, side))
    image = axis.imshow(normalised, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    font = max(4, min(9, int(500 / max(size, 1))))
    axis.set_xticks(range(size), names, rotation=90, fontsize=font)
    axis.set_yticks(range(size), names, fontsize=font)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class (sorted by recall)")
    axis.set_title(f"Confusion matrix, row-normalised (accuracy {accuracy:.1%})")
    figure.colorbar(image, ax=axis, fraction=0.04, label="fraction of the true class")
    return _png(figure)


def pca_plots(
    projected: DataFrame, reduction: Reduction, target: float | None, seed: int
) -> dict[str, bytes]:
    """The explained-variance curve and, when k >= 2, a scatter of the first two components
    over at most SCATTER_POINTS images; keyed by their names under --output."""
    drawn = {names.EXPLAINED_VARIANCE_PNG: explained_variance(reduction.explained_variance, target)}
    if reduction.k < 2:
        return drawn
    from pyspark.ml.functions import vector_to_array

    total = projected.count()
    sample = (
        projected
        if total <= SCATTER_POINTS
        else projected.sample(fraction=SCATTER_POINTS / total, seed=seed)
    )
    rows = sample.select(vector_to_array(F.col("pca")).alias("pc"), F.col("label")).collect()
    points = np.array([row["pc"][:2] for row in rows])
    drawn[names.PCA_SCATTER_PNG] = pca_scatter(points, [row["label"] for row in rows])
    return drawn
