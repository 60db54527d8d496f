"""Listing images with Spark's binaryFile source and naming them: id, label, split.

Labels are folder names kept byte for byte (spaces, digits, accents); the split is the top
folder when it is Training/ or Test/. Files directly under the input root have no class folder
and are rejected with that reason later, never dropped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from fruitlens import checksum
from fruitlens.config import Config
from fruitlens.pipeline import decode

log = logging.getLogger(__name__)

SPLITS = ("Training", "Test")
# What each file looks like in the outputs; with the settings and weights, it decides the rest
# (a rejection follows from the bytes), so listing and hashing alone can tell "unchanged".
INPUT_FIELDS = ("image_id", "path", "label", "split")


def read_binary_files(spark: SparkSession, input_uri: str) -> DataFrame:
    """Every file under the input, recursively. Hidden files (.x, _x) are skipped by Spark."""
    return (
        spark.read.format("binaryFile")
        # Folder names like "a=b" must stay labels, not become partition columns.
        .option("recursiveFileLookup", "true")
        .load(input_uri)
    )


def qualified_root(spark: SparkSession, input_uri: str) -> str:
    """The input root as Spark writes it in the path column (file:/..., s3a://...)."""
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(input_uri)
    filesystem = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return str(filesystem.makeQualified(hadoop_path).toString()).rstrip("/")


def with_names(files: DataFrame, root: str) -> DataFrame:
    """Add image_id (SHA-256 of the bytes), rel_path, label and split."""
    rel_path = F.substring(F.col("path"), len(root) + 2, 1 << 30)
    parts = F.split(rel_path, "/")
    depth = F.size(parts)
    top = F.element_at(parts, 1)
    return files.select(
        F.sha2(F.col("content"), 256).alias("image_id"),
        F.col("path"),
        rel_path.alias("rel_path"),
        F.when(depth >= 2, F.element_at(parts, -2)).alias("label"),
        F.when((depth >= 3) & top.isin(*SPLITS), top).alias("split"),
        F.col("length"),
        F.col("content"),
    )


def hadoop_path_string(uri: str) -> str:
    """file:///a%20b -> file:/a b: the form binaryFile writes in its path column."""
    parts = urlsplit(uri)
    path = unquote(parts.path)
    return f"file:{path}" if parts.scheme == "file" else f"{parts.scheme}://{parts.netloc}{path}"


def unscanned_files(spark: SparkSession, files: DataFrame) -> DataFrame:
    """Files Spark's index lists but its scan never returns (0-byte files), as rejections.

    Spark's file scan silently skips empty files; the index (inputFiles) does not, so the
    difference is what would otherwise vanish without a trace.
    """
    listed = [(hadoop_path_string(uri),) for uri in files.inputFiles()]
    inventory = spark.createDataFrame(listed, StructType([StructField("path", StringType())]))
    scanned = files.select(F.col("path"))
    missing = inventory.join(scanned, on="path", how="left_anti")
    return missing.select(
        F.lit(checksum.sha256(b"")).alias("image_id"),
        F.col("path"),
        F.lit(None).cast("string").alias("label"),
        F.lit(None).cast("string").alias("split"),
        F.lit(None).cast("array<float>").alias("features"),
        F.lit(decode.EMPTY_FILE).alias("reason"),
        F.lit("0-byte file: listed by Spark, skipped by its scan").alias("detail"),
    )


def symlink_loop(root: Path) -> tuple[Path, Path] | None:
    """A folder link under `root` that points back at one of its own ancestors, if any."""
    stack = [(root, frozenset({root.resolve()}))]
    while stack:
        folder, ancestors = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable: Spark will say so
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=True):
                    continue
                real = Path(entry.path).resolve(strict=True)
            except (OSError, RuntimeError):
                continue  # a dangling or self-resolving link lists nothing
            if real in ancestors:
                return Path(entry.path), real
            stack.append((Path(entry.path), ancestors | {real}))
    return None


def as_written(every_file: DataFrame, config: Config) -> DataFrame:
    """The path column as the outputs hold it: the content id when --pseudonymize."""
    if config.pseudonymize:
        return every_file.withColumn("path", F.col("image_id"))
    return every_file


def listed_inputs(spark: SparkSession, config: Config) -> DataFrame:
    """Every file under --input as the outputs name it, from listing and hashing alone."""
    files = read_binary_files(spark, str(config.input))
    named = with_names(files, qualified_root(spark, str(config.input)))
    columns = [F.col(name) for name in INPUT_FIELDS]
    every_file = named.select(*columns).unionByName(unscanned_files(spark, files).select(*columns))
    return as_written(every_file, config)


def inputs_digest(every_file: DataFrame) -> str:
    """SHA-256 over each file's (id, path, label, split) as the outputs name them."""
    fields = [F.coalesce(F.col(name), F.lit("")) for name in INPUT_FIELDS]
    lines = F.array_sort(F.collect_list(F.concat_ws("\t", *fields)))
    return every_file.select(F.sha2(F.concat_ws("\n", lines), 256)).first()[0]


def normalize_path(path: str) -> str:
    """A source path in the form Spark's binaryFile stores it (file:/abs/path or s3a://b/k)."""
    if path.startswith("s3://"):
        return "s3a://" + path[len("s3://") :]
    if path.startswith("s3a://"):
        return path
    if path.startswith("file://"):
        return hadoop_path_string(path)
    if path.startswith("file:"):
        return path
    return "file:" + os.path.abspath(path)


def paths_with_ids(spark: SparkSession, input_uri: str, id_list: list[str]) -> set[str]:
    """The files under an input whose content ids are listed (pseudonymized outputs hold no
    path: the sources are found by hashing the input again)."""
    try:
        files = read_binary_files(spark, input_uri)
        rows = files.where(F.sha2(F.col("content"), 256).isin(id_list)).select("path").collect()
    except Exception as exc:  # the input may be gone already: nothing left to delete there
        log.warning("could not scan %s for sources: %s", input_uri, type(exc).__name__)
        return set()
    return {row["path"] for row in rows}
