"""VGG16 features inside Spark: an iterator-of-Series pandas UDF, one warm model per worker.

Each row comes out either with 512 features or with a rejection reason, from the same pass over
the bytes, so "processed + rejected == listed" holds by construction.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from fruitlens import checksum, weights
from fruitlens.config import Config
from fruitlens.errors import Failure
from fruitlens.outputs import names
from fruitlens.pipeline import decode, images

log = logging.getLogger(__name__)

SIZE_PROBE_FILES = 32

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


Forward = Callable[[np.ndarray], np.ndarray]


def featurizer_udf(
    spec: FeaturizerSpec, model_for: Callable[[FeaturizerSpec], Forward] = worker_model
) -> Callable[..., Column]:
    """`model_for` gives a worker its network for `spec`: VGG16 by default; the stage tests pass
    a small deterministic function, so everything but the network runs as in the job."""

    @F.pandas_udf(FEATURIZED)  # type: ignore[call-overload]
    def featurize(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        # The model is looked up (and on a worker's first use, built) only when a batch has
        # decodable images: tasks with nothing new to featurize (--incremental re-runs, empty
        # or all-rejected partitions) then never import TensorFlow nor build VGG16.
        def forward(batch: np.ndarray) -> np.ndarray:
            return model_for(spec)(batch)

        for contents, has_label in batches:
            yield featurize_batch(contents, has_label, spec, forward)

    return featurize


def featurize_images(
    named: DataFrame,
    spec: FeaturizerSpec,
    require_label: bool = True,
    model_for: Callable[[FeaturizerSpec], Forward] = worker_model,
) -> DataFrame:
    """Named images (see images.with_names) -> one row per file with features or a reason.

    Training data needs a class folder per image; new images to predict do not.
    """
    featurize = featurizer_udf(spec, model_for)
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


# --- the driver's side: from --input to counted rows ------------------------------------------
@dataclass
class Featurized:
    processed: DataFrame
    rejected: DataFrame
    counts: dict[str, Any]
    spec: FeaturizerSpec
    resolved: weights.ResolvedWeights
    inputs_sha256: str
    reused: int | None  # features taken from the committed run (--incremental), else None


def native_size(files: DataFrame) -> int:
    """The images' own side length: the commonest larger side among the first files."""
    sizes = Counter()
    for row in files.select("content").limit(SIZE_PROBE_FILES).collect():
        found = decode.image_size(row["content"] or b"")
        if found:
            sizes[max(found)] += 1
    return sizes.most_common(1)[0][0] if sizes else 100


def featurize_input(
    spark: SparkSession,
    config: Config,
    resolved: weights.ResolvedWeights,
    image_size: int | None,
    require_label: bool,
    stored: DataFrame | None = None,
) -> tuple[DataFrame, FeaturizerSpec]:
    """Read, name and featurize every file under --input; the result is cached for reuse.

    `stored` (image_id, features) are features of an earlier run made with the same weights and
    size: images whose content id is among them are not featurized again.
    """
    files = images.read_binary_files(spark, str(config.input))
    root = images.qualified_root(spark, str(config.input))
    named = images.with_names(files, root)
    spark.sparkContext.addFile(str(resolved.local_path))
    spec = FeaturizerSpec(
        weights_file_name=resolved.local_path.name,
        weights_sha256=resolved.sha256,
        image_size=image_size or config.image_size or native_size(files),
        batch_size=config.batch_size,
        max_pixels=config.max_pixels,
        threads=int(spark.conf.get("spark.task.cpus", "1") or 1),
    )
    if stored is None:
        computed = featurize_images(named, spec, require_label)
    else:
        computed = reuse_stored_features(named, stored, spec, require_label)
    every_file = computed.unionByName(
        images.unscanned_files(spark, files), allowMissingColumns=True
    )
    return images.as_written(every_file, config).persist(), spec


def reuse_stored_features(
    named: DataFrame,
    stored: DataFrame,
    spec: FeaturizerSpec,
    require_label: bool,
    model_for: Callable[[FeaturizerSpec], Forward] = worker_model,
) -> DataFrame:
    """Stored features for known content ids, the network only for the new images."""
    marked = named.join(
        F.broadcast(stored.select(F.col("image_id"), F.lit(True).alias("stored"))),
        on="image_id",
        how="left",
    )
    reusable = F.col("stored").isNotNull()
    if require_label:
        reusable = reusable & F.col("label").isNotNull()
    known = (
        marked.where(reusable)
        .select(F.col("image_id"), F.col("path"), F.col("label"), F.col("split"))
        .join(F.broadcast(stored), on="image_id", how="inner")
        .select(
            F.col("image_id"),
            F.col("path"),
            F.col("label"),
            F.col("split"),
            F.col("features"),
            F.lit(None).cast("string").alias("reason"),
            F.lit(None).cast("string").alias("detail"),
            F.lit(True).alias("reused"),
        )
    )
    new = marked.where(~reusable).drop("stored")
    return featurize_images(new, spec, require_label, model_for).unionByName(
        known, allowMissingColumns=True
    )


def stored_features(
    spark: SparkSession, config: Config, previous: dict[str, Any], resolved: weights.ResolvedWeights
) -> tuple[DataFrame | None, int | None]:
    """Features of the run committed under --output (`previous`, its run.json), if --incremental
    and made the same way.

    They are copied into Spark's own block storage first (localCheckpoint) because this run
    may replace the very files they come from.
    """
    if not (config.incremental and previous):
        return None, None
    made_with = previous.get("model", {})
    size = made_with.get("image_size")
    if made_with.get("weights_sha256") != resolved.sha256 or (
        config.image_size is not None and config.image_size != size
    ):
        log.warning(
            "--incremental: stored features were made with other weights or size; "
            "featurizing everything again"
        )
        return None, None
    from pyspark.ml.functions import vector_to_array

    location = previous.get("outputs", {}).get(names.FEATURES)
    if not location:
        return None, None
    stored = spark.read.parquet(location).select(
        F.col("image_id"), vector_to_array(F.col("features"), "float32").alias("features")
    )
    return stored.dropDuplicates(["image_id"]).localCheckpoint(eager=True), int(size)


def count_outcomes(featurized: DataFrame) -> dict[str, Any]:
    by_reason = {
        (row["reason"] or ""): int(row["count"])
        for row in featurized.groupBy("reason").count().collect()
    }
    processed = by_reason.pop("", 0)
    rejected = sum(by_reason.values())
    return {
        "listed": processed + rejected,
        "processed": processed,
        "rejected": rejected,
        "rejected_by_reason": dict(sorted(by_reason.items())),
    }


def featurize_and_count(
    spark: SparkSession,
    config: Config,
    resolved: weights.ResolvedWeights,
    image_size: int | None = None,
    require_label: bool = True,
    stored: DataFrame | None = None,
) -> Featurized:
    """Every file under --input accounted for: listed = processed + rejected, or a Failure."""
    featurized, spec = featurize_input(spark, config, resolved, image_size, require_label, stored)
    counts = count_outcomes(featurized)
    digest = images.inputs_digest(featurized)
    if counts["listed"] != counts["processed"] + counts["rejected"]:
        raise Failure(f"image accounting broken: {counts}")
    reused = featurized.where(F.col("reused")).count() if stored is not None else None
    return Featurized(
        processed_rows(featurized),
        rejected_rows(featurized),
        counts,
        spec,
        resolved,
        digest,
        reused,
    )


def compact(frame: DataFrame) -> DataFrame:
    """One partition per core for the feature tables (2 KB a row): the scan's split, one task per
    ~128 files, would make each PCA and cross-validation iteration a job of hundreds of tasks."""
    return frame.coalesce(frame.sparkSession.sparkContext.defaultParallelism)
