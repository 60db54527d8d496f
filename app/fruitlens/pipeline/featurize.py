"""VGG16 features inside Spark: an iterator-of-Series pandas UDF, one warm model per worker.

Each row comes out either with 512 features or with a rejection reason, from the same pass over
the bytes, so "processed + rejected == listed" holds by construction.

Each Python worker chooses its own arithmetic (--precision) from its own CPU, because executors
may run on other instance types than the driver; every featurized row says which precision, which
worker and which CPU flags made it, so run.json accounts for them from the same job that counts
the images.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark import Accumulator
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from fruitlens import checksum, console, progress, session, weights
from fruitlens.config import Config
from fruitlens.errors import Failure
from fruitlens.outputs import names
from fruitlens.outputs.commit import resolved_outputs
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import decode, images

log = logging.getLogger(__name__)

# The images' own size is the commonest among the first files' headers (native_size). A header
# gives width and height within its first bytes; a JPEG's can follow an EXIF block of 64 KiB.
SIZE_PROBE_FILES = 32
SIZE_PROBE_BYTES = 128 * 1024
# The Spark UI's and event log's name (session.job_description) for the jobs that featurize:
# `run` and `predict` name their block so.
FEATURIZE_JOB = "featurize"

# Who made a row's features: filled for featurized images only (null for rejected or reused ones).
WORKER_COLUMNS = (
    "precision",
    "precision_reason",
    "worker",
    "cpu_model",
    "cpu_flags",
    "tensorflow_threads",
    "tensorflow_onednn",
    "batch_size",
)
FEATURIZED = StructType(
    [
        StructField("features", ArrayType(FloatType()), True),
        StructField("reason", StringType(), True),
        StructField("detail", StringType(), True),
        *(StructField(name, StringType(), True) for name in WORKER_COLUMNS),
    ]
)

# Each featurize worker's environment (session.spark_settings passes it as spark.executorEnv, so
# a --spark-conf spark.executorEnv.TF_ENABLE_ONEDNN_OPTS=0 wins). TensorFlow 2.21 runs oneDNN's
# kernels by itself only on CPUs with deep-learning instructions (AVX512_VNNI, AVX512_BF16,
# AMX); on an AVX2-only AMD EPYC Zen 3 (c6a/m6a) it ran Eigen's. There oneDNN's float32 kernels
# made the featurize stage 1.11-1.13x faster (600 images, local[2], alternated) with the same
# features (cosine >= 0.9999999, largest difference 8e-7) and the same PCA k, classifier and
# scores: bench/README.md, "Results", 2026-12-05 14:45.
WORKER_ENVIRONMENT = {"TF_ENABLE_ONEDNN_OPTS": "1"}

FP32 = "fp32"
BF16 = "bf16"
AUTO = "auto"
# The instructions that make bf16 faster than float32 in oneDNN: AMX tiles (Sapphire Rapids and
# later Xeons, AWS c7i/m7i/r7i) and AVX512_BF16 dot products (Cooper Lake, Zen 4: c7a/m7a).
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# The flags recorded per worker in run.json: those that decide the arithmetic's speed.
REPORTED_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# /proc/cpuinfo's vendor_id of the two vendors whose bf16 instructions `auto` knows.
INTEL = "GenuineIntel"
AMD = "AuthenticAMD"
# `auto` picks bf16 only on a (bf16 flag, CPU vendor) pair where a `make bench` run found bf16
# both harmless and worth it (its `targets.auto_may_use_bf16`): on the whole shared subset, bf16
# features changed nothing a user sees (accuracy and macro-F1 within 0.3 points, same PCA k +-1,
# >= 99.5 % of Test predictions agreeing), and the featurize stage ran at least 1.1x float32's.
# The vendor is part of the key because quality follows the instruction set (oneDNN picks its
# bf16 kernels by it) but speed follows the cores. Each entry names its evidence; a CPU without
# one stays float32 under `auto` (`--precision bf16` still forces it). bench/README.md says how
# to add one.
# Not in it: AVX512_BF16 on Intel. A Xeon whose hypervisor hides AMX, so AVX512_BF16 is its best
# bf16 instruction (bench/results/20261204T185551Z.json), passed the whole subset's check
# narrowly (19 of 4 184 Test predictions changed, 99.55 %) but featurized bf16 at 0.58x float32:
# oneDNN's AVX512_BF16 convolutions are slower than its float32 ones on Intel cores.
AUTO_BF16_VERIFIED: dict[tuple[str, str], str] = {
    ("amx_bf16", INTEL): (
        "bench/results/20261202T152837Z.json (Intel Xeon with AMX, 2026-12-02): on the whole "
        "shared subset, 14 of 4 184 Test predictions changed (99.67 % agree), accuracy 0.12 and "
        "macro-F1 0.13 points apart, PCA k 176 both"
    ),
    ("avx512_bf16", AMD): (
        "bench/results/20261206T022540Z.json (AMD EPYC Zen 4, family 25 model 17, 2026-12-06): "
        "on the whole shared subset, 19 of 4 184 Test predictions changed (99.55 % agree), "
        "accuracy 0.17 and macro-F1 0.18 points apart, PCA k 176 both; the featurize stage "
        "1.94x float32's (72.0 against 37.0 images/s). A Zen 5 ran it at 1.34x on 600 images "
        "(20261202T075934Z.json)"
    ),
}


@dataclass(frozen=True)
class FeaturizerSpec:
    """Everything a worker needs to rebuild the exact model the driver resolved."""

    weights_file_name: str  # name under SparkFiles (shipped with addFile)
    weights_sha256: str
    image_size: int
    batch_size: int | str  # as asked: a number, or auto (each worker chooses from its CPU)
    max_pixels: int
    threads: int
    precision: str = AUTO  # as asked: auto, fp32 or bf16; each worker resolves it


@dataclass(frozen=True)
class Cpu:
    """What /proc/cpuinfo says about the processor this Python process runs on."""

    model: str
    flags: frozenset[str]
    vendor: str = "unknown"  # vendor_id: GenuineIntel, AuthenticAMD

    @property
    def bf16_flags(self) -> tuple[str, ...]:
        return tuple(flag for flag in BF16_FLAGS if flag in self.flags)

    @property
    def reported_flags(self) -> tuple[str, ...]:
        return tuple(flag for flag in REPORTED_FLAGS if flag in self.flags)


def this_cpu(cpuinfo: str = "/proc/cpuinfo") -> Cpu:
    """The model name, flags and vendor of the first processor listed (all cores of a host
    share them)."""
    fields: dict[str, str] = {}
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: no flags, so float32
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return Cpu(
        model=fields.get("model name", "unknown"),
        flags=frozenset(fields.get("flags", "").split()),
        vendor=fields.get("vendor_id", "unknown"),
    )


def choose_precision(
    asked: str, cpu: Cpu, verified: Mapping[tuple[str, str], str] = AUTO_BF16_VERIFIED
) -> tuple[str, str]:
    """(precision used, why) for a worker on `cpu`; never bf16 where it would be emulated.

    `verified`: the (bf16 flag, vendor) pairs on which `auto` may use bf16 (AUTO_BF16_VERIFIED)."""
    present = cpu.bf16_flags
    if asked == FP32:
        return FP32, "fp32 asked"
    if asked == BF16:
        if present:
            return BF16, f"bf16 asked; CPU has {', '.join(present)}"
        return FP32, (
            "bf16 asked but this CPU has neither amx_bf16 nor avx512_bf16 (bf16 would be "
            "emulated, slower than fp32): fell back to fp32"
        )
    proven = [flag for flag in present if (flag, cpu.vendor) in verified]
    if proven:
        return BF16, (
            f"auto: CPU has {proven[0]} ({cpu.vendor}), where the benchmark verified bf16 "
            "features and speed"
        )
    if present:
        return FP32, (
            f"auto: CPU has {', '.join(present)} but the benchmark has not verified bf16 on "
            f"it ({cpu.vendor}): fp32 (--precision bf16 forces it)"
        )
    return FP32, "auto: CPU has no bf16 instructions"


# `--batch-size auto`: the images per forward pass each worker uses, chosen from its own CPU.
# 64 where it has AVX-512: the default from 2026-12-02 (featurize tasks 3 % shorter in float32
# and 9 % in bf16 than at 32 on the AMX Xeon), and the bare loop's best of 16/32/64 in all twelve
# AVX-512 bench runs since (Intel with and without AMX, AMD Zen 4 and 5). 16 elsewhere: on an AMD
# EPYC Zen 3 (AVX2 alone) 16 made the featurize stage of 4 800 images 1.0-8.6 % faster than 64
# in five alternated pairs, with a 5-11 % smaller peak (bench/README.md, 2026-12-05), and the
# bare loop put 16 first in five of its six runs on CPUs without AVX-512 (five Zen 3, one Zen 4
# whose VM hid AVX-512). Those ran Eigen's kernels; with oneDNN's (WORKER_ENVIRONMENT) three
# alternated pairs on the Zen 3's 4 800 images split even (166.9 s at 16, 166.6 s at 64). Other
# AVX2 CPUs (Zen 2, Intel before Skylake-SP) were not measured.
BATCH_SIZE_AVX512 = 64
BATCH_SIZE_OTHER = 16


def choose_batch_size(asked: int | str, cpu: Cpu) -> int:
    """The images per forward pass of a worker on `cpu`: the number asked, or its CPU's (auto)."""
    if asked != AUTO:
        return int(asked)
    return BATCH_SIZE_AVX512 if "avx512f" in cpu.flags else BATCH_SIZE_OTHER


def arrow_batch_rows(asked: int | str) -> int:
    """Files per Arrow batch sent to a featurize worker: the largest forward pass any worker
    may choose, so that no pass is cut short.

    Not a whole task's files: the JVM reads and hashes the next batch's files while the worker
    runs the network on this one. With one batch per task (~128 files) the worker waited for
    all of them to be read first: over S3, a HEAD, a HEAD and a GET per file through s3a,
    4 of every 21 seconds of a 128-file task at 20 ms a request (bench/README.md, "S3's latency
    per request").
    """
    return BATCH_SIZE_AVX512 if asked == AUTO else max(BATCH_SIZE_AVX512, int(asked))


@dataclass(frozen=True)
class WorkerModel:
    """A worker's compiled network and the facts its rows carry into run.json."""

    forward: Callable[[np.ndarray], np.ndarray]
    precision: str
    reason: str
    worker: str
    cpu: Cpu
    threads: int  # TensorFlow's intra-op threads in this process
    onednn: bool  # whether TensorFlow runs oneDNN's kernels in this process (WORKER_ENVIRONMENT)

    def columns(self) -> dict[str, str]:
        return {
            "precision": self.precision,
            "precision_reason": self.reason,
            "worker": self.worker,
            "cpu_model": self.cpu.model,
            "cpu_flags": " ".join(self.cpu.reported_flags),
            "tensorflow_threads": str(self.threads),
            "tensorflow_onednn": str(self.onednn).lower(),
        }


# One compiled model per Python worker process, reused by every task that process runs
# (spark.python.worker.reuse): building VGG16 costs seconds, a batch costs milliseconds.
_WORKER_MODELS: dict[FeaturizerSpec, WorkerModel] = {}


def worker_model(spec: FeaturizerSpec) -> WorkerModel:
    if spec not in _WORKER_MODELS:
        _WORKER_MODELS[spec] = _build_model(spec)
        # TensorFlow, Keras and the network are ~400 000 Python objects that live as long as
        # the worker, and a reused worker runs a full gc.collect() after every task
        # (pyspark/daemon.py): ~0.2 s of each featurize task spent walking them. Frozen, the
        # collector skips them; nothing in them is garbage (collected just before).
        gc.collect()
        gc.freeze()
    return _WORKER_MODELS[spec]


def _build_model(spec: FeaturizerSpec) -> WorkerModel:
    console.quiet_tensorflow()
    import tensorflow as tf
    from pyspark import SparkFiles

    # Setting them is allowed once, before TensorFlow's runtime starts in this process.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    # What TensorFlow runs with, not what was asked: a runtime already started keeps its own.
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    precision, reason, worker, cpu = resolve_here(spec.precision)
    if spec.precision == BF16 and precision != BF16:
        log.warning("worker %s (%s): %s", worker, cpu.model, reason)
    model = weights.build_vgg16(spec.image_size, precision == BF16)
    weights.load_into(model, _local_weights(SparkFiles.get(spec.weights_file_name), spec))
    forward = compile_forward(model, spec.image_size)
    return WorkerModel(forward, precision, reason, worker, cpu, threads, onednn_enabled())


def onednn_enabled() -> bool:
    """What TensorFlow decided, at its start in this process, from TF_ENABLE_ONEDNN_OPTS and the
    CPU. TensorFlow's own check, which its public API does not expose."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def resolve_here(asked: str) -> tuple[str, str, str, Cpu]:
    """What this Python worker reports of itself in every row it featurizes: the precision
    `asked` resolves to on its CPU, why, the worker's name (host/process) and its CPU."""
    cpu = this_cpu()
    precision, reason = choose_precision(asked, cpu)
    return precision, reason, f"{socket.gethostname()}/{os.getpid()}", cpu


# Spark's local masters: `local` (one core), `local[N]`, `local[*]`, `local[N,retries]`.
LOCAL_MASTER = re.compile(r"local(?:\[(\d+|\*)(?:,\d+)?\])?")


def tensorflow_threads(conf: Mapping[str, str]) -> int:
    """TensorFlow threads per featurize task, from the session's Spark settings: twice the
    task's cores (spark.task.cpus), at most the executor's cores.

    A task's worker alone on its cores leaves them idle whenever it is not in the network:
    decoding, Arrow, its share of the start-up, the last task of a stage running alone. With
    twice the threads, the executor's other workers take up that slack. On 2 cores (local[2],
    AMD EPYC Zen 3) two two-thread workers featurized 1 200 images 8-13 % faster than two
    one-thread workers, run alternately (bench/README.md, "Results"); twice stops short of
    every task using all of a large executor's cores, whose threads would contend.
    """
    task_cpus = int(conf.get("spark.task.cpus", "1"))
    master = conf.get("spark.master", "local")
    local = LOCAL_MASTER.fullmatch(master)
    if local:
        cores = local.group(1) or "1"
        executor_cores = (os.cpu_count() or 1) if cores == "*" else int(cores)
    else:
        executor_cores = int(conf.get("spark.executor.cores", "1"))
    return max(task_cpus, min(executor_cores, 2 * task_cpus))


def _local_weights(path: str, spec: FeaturizerSpec) -> Path:
    local = Path(path)
    actual = checksum.sha256(local)
    if actual != spec.weights_sha256:
        raise RuntimeError(
            f"weights on this worker have SHA-256 {actual}, driver had {spec.weights_sha256}"
        )
    return local


def compile_forward(model: Any, image_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """VGG16 preprocessing + forward pass as one traced graph (much faster than predict).

    Features come out float32 whatever the model computes in (a bf16 model's pooled output is
    cast back), so the tables, PCA and classifier see one type.
    """
    import tensorflow as tf
    from keras.applications.vgg16 import preprocess_input

    @tf.function(
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)],
        reduce_retracing=True,
        # No Python control flow to convert. AutoGraph would write the converted source to a
        # temporary file that only an orderly exit removes, and Spark's workers end with
        # os._exit: one file per worker model left in the executor's /tmp.
        autograph=False,
    )
    def forward(batch: Any) -> Any:
        return tf.cast(model(preprocess_input(batch), training=False), tf.float32)

    return lambda batch: forward(batch).numpy()


REFUSAL_DETAIL = {
    decode.NO_CLASS_FOLDER: "file is not inside a class folder",
    decode.TOO_DEEP: "file is in a folder below its class folder (<Class>/<file> expected)",
}


def featurize_batch(
    contents: pd.Series,
    refusals: pd.Series,
    spec: FeaturizerSpec,
    model: Callable[[], WorkerModel],
) -> pd.DataFrame:
    """Decode what can be decoded, run the network on those, keep a reason for the rest.

    `refusals`: the naming rule's reason to reject each file unread (images.with_names), or None.
    `model` is called only when a batch has decodable images: tasks with nothing to featurize
    (--incremental re-runs, empty or all-rejected partitions) never import TensorFlow nor build
    VGG16.
    """
    decoded = [
        decode.rejected(refusal, REFUSAL_DETAIL[refusal])
        if refusal
        else decode.decode(content, spec.image_size, spec.max_pixels)
        for content, refusal in zip(contents, refusals, strict=True)
    ]
    good = [index for index, item in enumerate(decoded) if item.pixels is not None]
    features: list[np.ndarray | None] = [None] * len(decoded)
    made_by: dict[str, list[str | None]] = {name: [None] * len(decoded) for name in WORKER_COLUMNS}
    if good:
        worker = model()
        batch_size = choose_batch_size(spec.batch_size, worker.cpu)
        pixels = np.stack([decoded[index].pixels for index in good]).astype(np.float32)
        for start in range(0, len(good), batch_size):
            outputs = worker.forward(pixels[start : start + batch_size])
            for offset, row in enumerate(outputs):
                features[good[start + offset]] = row.astype(np.float32)
        columns = {**worker.columns(), "batch_size": str(batch_size)}
        for name, value in columns.items():
            for index in good:
                made_by[name][index] = value
    return pd.DataFrame(
        {
            "features": features,
            "reason": [item.reason for item in decoded],
            "detail": [item.detail or None for item in decoded],
            **made_by,
        }
    )


ModelFor = Callable[[FeaturizerSpec], WorkerModel]


def featurizer_udf(
    spec: FeaturizerSpec, counter: Accumulator[int] | None, model_for: ModelFor | None = None
) -> Callable[..., Column]:
    """`counter`, if given, is added the number of files of every batch done (progress.py).
    `model_for` gives a worker its network for `spec`: VGG16 (`worker_model`) by default; the
    stage tests pass a small deterministic stand-in, so everything but the network runs as in
    the job. The default is looked up here, when the job builds the UDF, not when this module
    is imported: the in-process command tests swap `worker_model` for the whole command."""
    build = model_for or worker_model

    @F.pandas_udf(FEATURIZED)  # type: ignore[call-overload]
    def featurize(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        for contents, refusals in batches:
            yield featurize_batch(contents, refusals, spec, lambda: build(spec))
            if counter is not None:
                counter.add(len(contents))

    return featurize


def featurize_images(
    named: DataFrame,
    spec: FeaturizerSpec,
    require_label: bool = True,
    counter: Accumulator[int] | None = None,
    model_for: ModelFor | None = None,
) -> DataFrame:
    """Named images (see images.with_names) -> one row per file with features or a reason.

    Training data needs a class folder per image; new images to predict do not. `counter`
    counts the files featurized, for the progress line.
    """
    featurize = featurizer_udf(spec, counter, model_for)
    refusal = F.col("refusal") if require_label else F.lit(None).cast("string")
    result = featurize(F.col("content"), refusal).alias("out")
    with_output = named.select(
        F.col("image_id"), F.col("path"), F.col("label"), F.col("split"), result
    )
    return with_output.select(
        F.col("image_id"),
        F.col("path"),
        F.col("label"),
        F.col("split"),
        *(F.col(f"out.{field.name}").alias(field.name) for field in FEATURIZED.fields),
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
    precision: dict[str, Any]  # run.json's precision section: asked, used, each worker's CPU


def native_size(storage: Storage, listed: images.Listed) -> int:
    """The images' own side length: the commonest larger side among the first files' headers,
    read by the driver (a ranged GET each on S3, several at a time).

    Not a Spark job: the two that read the same 32 files through the session took 0.4-0.9 s
    (600 images, `local[2]`, AMD EPYC Zen 4; bench/README.md, "The jobs around the featurize
    job"), and on S3 each whole file went through s3a; here local files take milliseconds.
    """

    def header(path: str) -> bytes:
        try:
            return storage.read_bytes(path, SIZE_PROBE_BYTES)
        except Exception as exc:  # gone or changed since the listing: the job accounts for it
            log.debug("size probe: %s unreadable: %s", path, exc)
            return b""

    first = list(islice(listed.readable, SIZE_PROBE_FILES))
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = [decode.image_size(head) for head in pool.map(header, first)]
    sizes = Counter(max(size) for size in found if size)
    return sizes.most_common(1)[0][0] if sizes else 100


def shipped_spec(
    spark: SparkSession, config: Config, resolved: weights.ResolvedWeights, image_size: int
) -> FeaturizerSpec:
    """What every worker needs to featurize as `config` says; the weights file is shipped to
    them (SparkFiles) here."""
    spark.sparkContext.addFile(str(resolved.local_path))
    return FeaturizerSpec(
        weights_file_name=resolved.local_path.name,
        weights_sha256=resolved.sha256,
        image_size=image_size,
        batch_size=config.batch_size,
        max_pixels=config.max_pixels,
        threads=tensorflow_threads(dict(spark.sparkContext.getConf().getAll())),
        precision=config.precision,
    )


def featurize_input(
    spark: SparkSession,
    config: Config,
    listed: images.Listed,
    spec: FeaturizerSpec,
    require_label: bool,
    stored: DataFrame | None = None,
    counter: Accumulator[int] | None = None,
) -> DataFrame:
    """Read, name and featurize every file the driver's listing found (cached for reuse); those
    it found empty or too large become rejections unread.

    `stored` (image_id, features) are features of an earlier run made with the same weights and
    size: images whose content id is among them are not featurized again. `counter` counts the
    files the network has gone through.
    """
    files = images.read_listed_files(spark, listed.readable)
    named = images.with_names(files, images.qualified_root(spark, str(config.input)))
    if stored is None:
        computed = featurize_images(named, spec, require_label, counter)
    else:
        computed = reuse_stored_features(named, stored, spec, require_label, counter)
    every_file = images.with_unread(spark, computed, listed)
    return images.as_written(every_file, config).persist()


def reuse_stored_features(
    named: DataFrame,
    stored: DataFrame,
    spec: FeaturizerSpec,
    require_label: bool,
    counter: Accumulator[int] | None = None,
    model_for: ModelFor | None = None,
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
    computed = featurize_images(new, spec, require_label, counter, model_for)
    return computed.unionByName(known, allowMissingColumns=True)


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

    location = resolved_outputs(str(config.output), previous).get(names.FEATURES)
    if not location:
        return None, None
    stored = spark.read.parquet(location).select(
        F.col("image_id"), vector_to_array(F.col("features"), "float32").alias("features")
    )
    return stored.dropDuplicates(["image_id"]).localCheckpoint(eager=True), int(size)


def count_outcomes(featurized: DataFrame) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """Images per outcome, per worker that featurized some (its precision, CPU and count), and
    the inputs' digest (images.lines_digest), from one aggregation job: the rows themselves say
    who made them. The digest's own jobs took ~0.4 s after the featurize job, 600 images in
    `local[2]` on an AMD EPYC Zen 4 (bench/README.md, "The jobs around the featurize job")."""
    rows = (
        featurized.groupBy("reason", *WORKER_COLUMNS)
        .agg(F.count(F.lit(1)).alias("count"), F.collect_list(images.input_line()).alias("lines"))
        .collect()
    )
    by_reason: Counter[str] = Counter()
    for row in rows:
        by_reason[row["reason"] or ""] += int(row["count"])
    processed = by_reason.pop("", 0)
    rejected = sum(by_reason.values())
    counts = {
        "listed": processed + rejected,
        "processed": processed,
        "rejected": rejected,
        "rejected_by_reason": dict(sorted(by_reason.items())),
    }
    workers = [
        {
            "worker": row["worker"],
            "cpu_model": row["cpu_model"],
            "cpu_flags": (row["cpu_flags"] or "").split(),
            "precision": row["precision"],
            "why": row["precision_reason"],
            "tensorflow_threads": int(row["tensorflow_threads"]),
            "onednn": row["tensorflow_onednn"] == "true",
            "batch_size": int(row["batch_size"]),
            "images": int(row["count"]),
        }
        for row in rows
        if row["reason"] is None and row["precision"] is not None
    ]
    digest = images.lines_digest(line for row in rows for line in row["lines"])
    return counts, sorted(workers, key=lambda worker: worker["worker"]), digest


def precision_summary(
    asked: str, counts: dict[str, Any], workers: list[dict[str, Any]]
) -> dict[str, Any]:
    """run.json's account of the arithmetic: asked, used per image, and each worker's CPU."""
    used: Counter[str] = Counter()
    for worker in workers:
        used[worker["precision"]] += worker["images"]
        if asked == BF16 and worker["precision"] != BF16:
            log.warning("worker %s: %s", worker["worker"], worker["why"])
    stored = counts["processed"] - sum(used.values())
    if stored:
        used["stored_features_reused"] = stored
    driver = this_cpu()
    return {
        "asked": asked,
        "images": dict(sorted(used.items())),
        "workers": workers,
        "driver_cpu": {"model": driver.model, "cpu_flags": list(driver.reported_flags)},
    }


def warm_up_tasks(conf: Mapping[str, str]) -> int:
    """One task per executor the session asks for; a local session is one executor."""
    master = conf.get("spark.master", "local")
    if LOCAL_MASTER.fullmatch(master):
        return 1
    return int(conf.get("spark.executor.instances", "1"))


def _daemon_pid(_: Iterator[int]) -> Iterator[int]:
    yield os.getppid()


class StartingWorkers(threading.Thread):
    """Starts the executors' Python daemons while the driver starts Spark SQL and lists.

    A featurizing session's daemon imports TensorFlow before it forks a worker
    (python_daemon.py), 3-7 s that the featurize job's first tasks would wait for. Commands
    start this thread right after the session; featurize_and_count waits for it before its
    first job. It is an RDD job because a SQL one waits for Spark SQL's start. Spark keys its
    daemons by the workers' environment, and session.spark_settings gives every featurizing
    session the variable its SQL runners add, so the featurize UDF finds this job's daemon (and
    its idle worker). The import overlaps what the driver does before the featurize job, which
    pays off where executors have cores of their own (a cluster; not measured). Where they
    share the driver's two cores it is a wash: AMD EPYC Zen 3, 600 images, `local[2]`, five
    ABBA pairs, featurize stage medians 27.6 s against 27.9 s without it (bench/README.md,
    Results, 2026-12-05 18:39). A local session's daemon has imported TensorFlow before this
    job asks for it (python_daemon.py, part 5): the job then only launches it.
    """

    def __init__(self, spark: SparkSession) -> None:
        super().__init__(name="fruitlens-python-workers", daemon=True)
        self.spark = spark
        self.tasks = warm_up_tasks(dict(spark.sparkContext.getConf().getAll()))
        self.daemon_pids: list[int] = []

    def run(self) -> None:
        context = self.spark.sparkContext
        try:
            with session.job_description(self.spark, "start the Python workers"):
                started = context.parallelize(range(self.tasks), self.tasks)
                self.daemon_pids = started.mapPartitions(_daemon_pid).collect()
        except Exception as exc:  # the featurize job meets the same cause and reports it
            log.debug("starting the Python workers early failed: %s", exc)


def start_python_workers(spark: SparkSession) -> StartingWorkers:
    starting = StartingWorkers(spark)
    starting.start()
    return starting


def featurize_and_count(
    spark: SparkSession,
    config: Config,
    resolved: weights.ResolvedWeights,
    listed: images.Listed,
    spec: FeaturizerSpec,
    require_label: bool = True,
    stored: DataFrame | None = None,
    starting: StartingWorkers | None = None,
) -> Featurized:
    """Every file the driver listed under --input accounted for, as processed or rejected, or
    a Failure.

    While the images go through the network, a progress line shows how far it has got.
    `starting`: the Python workers started with the session, waited for before the first job.
    """
    counter = spark.sparkContext.accumulator(0)
    featurized = featurize_input(spark, config, listed, spec, require_label, stored, counter)
    if starting is not None:
        # Its featurize tasks would wait for the same daemon; after it, the progress line and
        # the Spark UI see the featurize job alone.
        starting.join()
    line = progress.Progress(
        "featurize",
        listed.files,
        done=lambda: counter.value,
        tasks=lambda: progress.stage_tasks(spark.sparkContext),
        interval_s=config.progress_interval,
    )
    with line:
        # The first action: every image goes through.
        counts, workers, digest = count_outcomes(featurized)
        line.finish(counts["listed"])
    # One row per file the driver listed, read or not, whatever the joins on the way.
    if counts["listed"] != listed.files:
        raise Failure(
            f"image accounting broken: the listing found {listed.files} files, rows say {counts}"
        )
    reused = featurized.where(F.col("reused")).count() if stored is not None else None
    return Featurized(
        processed_rows(featurized),
        rejected_rows(featurized),
        counts,
        spec,
        resolved,
        digest,
        reused,
        precision_summary(config.precision, counts, workers),
    )


def compact(frame: DataFrame) -> DataFrame:
    """One partition per core for the feature tables (2 KB a row): the reader's split, up to 128
    files a task, would make each PCA and cross-validation iteration a job of hundreds of tasks."""
    return frame.coalesce(frame.sparkSession.sparkContext.defaultParallelism)
