"""Listing images with Spark's binaryFile source and naming them: id, label, split.

Labels are folder names kept byte for byte (spaces, digits, accents); the split is the top
folder when it is Training/ or Test/. Files directly under the input root have no class folder
and are rejected with that reason later, never dropped.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from fruitlens import checksum
from fruitlens.pipeline import decode

SPLITS = ("Training", "Test")


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
