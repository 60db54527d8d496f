"""Scores of a classifier on labelled images: accuracy, macro-F1, per class, top-3, confusion."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def confusion_matrix(scored: DataFrame, classes: list[str]) -> np.ndarray:
    """Rows: true class, columns: predicted class, in the model's class order.

    True labels the model never saw get an extra last row, so they count as errors.
    """
    size = len(classes)
    counts = scored.groupBy(F.col("label_index"), F.col("prediction")).count().collect()
    matrix = np.zeros((size + 1, size), dtype=np.int64)
    for row in counts:
        matrix[min(int(row["label_index"]), size), int(row["prediction"])] += int(row["count"])
    return matrix if matrix[size].sum() else matrix[:size]


def top_k_accuracy(scored: DataFrame) -> float:
    hits = scored.select(
        F.exists(F.col("top3"), lambda item: item["label"] == F.col("label"))
        .cast("int")
        .alias("hit")
    )
    row = hits.agg(F.avg("hit").alias("rate")).first()
    return float(row["rate"]) if row and row["rate"] is not None else 0.0


def metrics(scored: DataFrame, classes: list[str]) -> dict[str, Any]:
    matrix = confusion_matrix(scored, classes)
    size = len(classes)
    true_totals = matrix.sum(axis=1)
    predicted_totals = matrix.sum(axis=0)
    correct = np.diag(matrix[:size, :size])
    total = int(matrix.sum())
    per_class = {}
    f1_scores = []
    for index, name in enumerate(classes):
        precision = correct[index] / predicted_totals[index] if predicted_totals[index] else 0.0
        recall = correct[index] / true_totals[index] if true_totals[index] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if true_totals[index]:
            f1_scores.append(f1)
        per_class[name] = {
            "precision": round(float(precision), 6),
            "recall": round(float(recall), 6),
            "f1": round(float(f1), 6),
            "support": int(true_totals[index]),
        }
    return {
        "images": total,
        "accuracy": float(correct.sum() / total) if total else 0.0,
        "macro_f1": float(np.mean(f1_scores)) if f1_scores else 0.0,
        "top3_accuracy": top_k_accuracy(scored),
        "per_class": per_class,
        "classes": classes,
        "confusion_matrix": matrix.tolist(),
        "unseen_label_rows": int(matrix[size].sum()) if matrix.shape[0] > size else 0,
    }
