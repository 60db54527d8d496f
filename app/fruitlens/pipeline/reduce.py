"""PCA with Spark ML: standardise, then keep k components (given, or enough for the variance)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import PCA, StandardScaler, VectorSlicer
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class Reduction:
    model: PipelineModel
    k: int
    explained_variance: list[float]  # per kept component, as fractions of the total

    @property
    def cumulative_variance(self) -> float:
        return float(sum(self.explained_variance))

    def summary(self, target_variance: float | None) -> dict[str, Any]:
        """run.json's `pca` section."""
        return {
            "k": self.k,
            "explained_variance": round(self.cumulative_variance, 6),
            "explained_variance_per_component": [round(v, 6) for v in self.explained_variance],
            "target_variance": target_variance,
        }


def pca_pipeline(k: int, input_col: str = "features", output_col: str = "pca") -> Pipeline:
    # Spark's PCA does not centre the data it projects: the scaler does (and puts the
    # 512 activations, whose scales differ by orders of magnitude, on an equal footing).
    scaler = StandardScaler(inputCol=input_col, outputCol="scaled", withMean=True, withStd=True)
    return Pipeline(stages=[scaler, PCA(k=k, inputCol="scaled", outputCol=output_col)])


def fit_pca_like_spark(training: np.ndarray, k: int) -> Callable[[np.ndarray], np.ndarray]:
    """`pca_pipeline(k)` fitted with NumPy on `training` (rows x columns, at least 2 rows), as
    Spark ML fits it: the scaler's mean and unbiased std (a constant column scales to 0), then
    the top-k eigenvectors of the scaled rows' covariance, which PCA projects onto without
    centring again. Returns the fitted transform. Where Spark and this differ is in each
    component's sign, which no standardised, L2-penalised classifier downstream can tell.

    Cross-validation prepares its folds with it in one Python task each (see
    classify._score_in_tasks): on Spark, each fold's scaler and PCA were 6 small jobs."""
    mean = training.mean(axis=0)
    std = training.std(axis=0, ddof=1)
    inverse = np.divide(1.0, std, out=np.zeros_like(std), where=std > 0)
    _, eigenvectors = np.linalg.eigh(np.cov((training - mean) * inverse, rowvar=False))
    components = eigenvectors[:, ::-1][:, :k]  # eigh sorts ascending
    return lambda rows: ((rows - mean) * inverse) @ components


def choose_k(explained: np.ndarray, target: float) -> int:
    """Smallest k whose cumulative explained variance reaches the target."""
    cumulative = np.cumsum(explained)
    reached = np.nonzero(cumulative >= target - 1e-12)[0]
    return int(reached[0]) + 1 if reached.size else len(explained)


def fit_reduction(
    features: DataFrame, rows: int, dim: int, k: int | None, variance: float, max_k: int
) -> Reduction:
    ceiling = max(1, min(max_k, rows, dim))
    if k is not None:
        chosen = min(k, rows, dim)
        model = pca_pipeline(chosen).fit(features)
        explained = list(model.stages[-1].explainedVariance)
    else:
        probe = pca_pipeline(ceiling, output_col="components").fit(features)
        explained = list(probe.stages[-1].explainedVariance)
        chosen = choose_k(np.asarray(explained), variance)
        # Spark's PCA takes the first k columns of one SVD of the covariance, whatever k: the
        # probe's first `chosen` components are a `chosen`-component fit's, with no second fit.
        first = VectorSlicer(inputCol="components", outputCol="pca", indices=list(range(chosen)))
        model = PipelineModel(stages=[*probe.stages, first])
    return Reduction(
        model=model, k=chosen, explained_variance=[float(v) for v in explained[:chosen]]
    )


def project(reduction: Reduction, features: DataFrame) -> DataFrame:
    projected = reduction.model.transform(features)
    return projected.select(
        F.col("image_id"), F.col("path"), F.col("label"), F.col("split"), F.col("pca")
    )


def pca_columns(projected: DataFrame, k: int) -> DataFrame:
    """One column per component (pc_1..pc_k): the shape of the client's resultats_pca.csv."""
    components = vector_to_array(F.col("pca"))
    return projected.select(
        F.col("image_id"),
        F.col("path"),
        F.col("label"),
        F.col("split"),
        *[components[i].alias(f"pc_{i + 1}") for i in range(k)],
    )
