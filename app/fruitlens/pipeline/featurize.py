"""VGG16 features inside Spark: an iterator-of-Series pandas UDF, one warm model per worker.

Each row comes out either with 512 features or with a rejection reason, from the same pass over
the bytes, so "processed + rejected == listed" holds by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from fruitlens import checksum
from fruitlens.pipeline import decode

FEATURIZED = StructType(
    [
        StructField("features", ArrayType(FloatType()), True),
        StructField("reason", StringType(), True),
        StructField("detail", StringType(), True),
    ]
)


@dataclass(frozen=True)
class FeaturizerSpec:
    """Everything a worker needs to rebuild the exact model the driver resolved."""

    weights_file_name: str  # name under SparkFiles (shipped with addFile)
    weights_sha256: str
    image_size: int
    batch_size: int
    max_pixels: int
    threads: int


# One compiled model per Python worker process, reused by every task that process runs
# (spark.python.worker.reuse): building VGG16 costs seconds, a batch costs milliseconds.
_WORKER_MODELS: dict[FeaturizerSpec, Callable[[np.ndarray], np.ndarray]] = {}


def worker_model(spec: FeaturizerSpec) -> Callable[[np.ndarray], np.ndarray]:
    if spec not in _WORKER_MODELS:
        _WORKER_MODELS[spec] = _build_model(spec)
    return _WORKER_MODELS[spec]


def _build_model(spec: FeaturizerSpec) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf
    from pyspark import SparkFiles

    from fruitlens import weights

    # A task owns `threads` cores; more TensorFlow threads than that only oversubscribe them.
    # Setting them is allowed once, before TensorFlow's runtime starts in this process.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    model = weights.build_vgg16(spec.image_size)
    weights.load_into(model, _local_weights(SparkFiles.get(spec.weights_file_name), spec))
    return compile_forward(model, spec.image_size)


def _local_weights(path: str, spec: FeaturizerSpec) -> Path:
    local = Path(path)
    actual = checksum.sha256(local)
    if actual != spec.weights_sha256:
        raise RuntimeError(
            f"weights on this worker have SHA-256 {actual}, driver had {spec.weights_sha256}"
        )
    return local


def compile_forward(model: Any, image_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """VGG16 preprocessing + forward pass as one traced graph (much faster than predict)."""
    import tensorflow as tf
    from keras.applications.vgg16 import preprocess_input

    @tf.function(
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)],
        reduce_retracing=True,
    )
    def forward(batch: Any) -> Any:
        return model(preprocess_input(batch), training=False)

    return lambda batch: forward(batch).numpy()


def featurize_batch(
    contents: pd.Series, has_label: pd.Series, spec: FeaturizerSpec, forward: Callable[..., Any]
) -> pd.DataFrame:
    """Decode what can be decoded, run the network on those, keep a reason for the rest."""
    decoded = [
        decode.decode(content, spec.image_size, spec.max_pixels)
        if labelled
        else decode.rejected(decode.NO_CLASS_FOLDER, "file is not inside a class folder")
        for content, labelled in zip(contents, has_label, strict=True)
    ]
    good = [index for index, item in enumerate(decoded) if item.pixels is not None]
    features: list[np.ndarray | None] = [None] * len(decoded)
    if good:
        pixels = np.stack([decoded[index].pixels for index in good]).astype(np.float32)
        for start in range(0, len(good), spec.batch_size):
            outputs = forward(pixels[start : start + spec.batch_size])
            for offset, row in enumerate(outputs):
                features[good[start + offset]] = row.astype(np.float32)
    return pd.DataFrame(
        {
            "features": features,
            "reason": [item.reason for item in decoded],
            "detail": [item.detail or None for item in decoded],
        }
    )


def featurizer_udf(spec: FeaturizerSpec) -> Callable[..., Column]:
    @F.pandas_udf(FEATURIZED)  # type: ignore[call-overload]
    def featurize(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        # The model is looked up (and on a worker's first use, built) only when a batch has
        # decodable images: tasks with nothing new to featurize (--incremental re-runs, empty
        # or all-rejected partitions) then never import TensorFlow nor build VGG16.
        def forward(batch: np.ndarray) -> np.ndarray:
            return worker_model(spec)(batch)

        for contents, has_label in batches:
            yield featurize_batch(contents, has_label, spec, forward)

    return featurize


def featurize_images(
    named: DataFrame, spec: FeaturizerSpec, require_label: bool = True
) -> DataFrame:
    """Named images (see images.with_names) -> one row per file with features or a reason.

    Training data needs a class folder per image; new images to predict do not.
    """
    featurize = featurizer_udf(spec)
    usable = F.col("label").isNotNull() if require_label else F.lit(True)
    result = featurize(F.col("content"), usable).alias("out")
    with_output = named.select(
        F.col("image_id"), F.col("path"), F.col("label"), F.col("split"), result
    )
    return with_output.select(
        F.col("image_id"),
        F.col("path"),
        F.col("label"),
        F.col("split"),
        F.col("out.features").alias("features"),
        F.col("out.reason").alias("reason"),
        F.col("out.detail").alias("detail"),
    )


def processed_rows(featurized: DataFrame) -> DataFrame:
    from pyspark.ml.functions import array_to_vector

    return featurized.where(F.col("reason").isNull()).select(
        F.col("image_id"),
        F.col("path"),
        F.col("label"),
        F.col("split"),
        array_to_vector(F.col("features")).alias("features"),
    )


def rejected_rows(featurized: DataFrame) -> DataFrame:
    return featurized.where(F.col("reason").isNotNull()).select(
        F.col("image_id"), F.col("path"), F.col("reason"), F.col("detail")
    )
