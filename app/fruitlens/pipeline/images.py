"""Reading the listed images and naming them: id, label, split.

The driver lists the input before Spark starts (commands.preflight); the files it found are
read by fruitlens's JVM reader (read_listed_files). Spark's binaryFile source is left to what
has no listing: finding an erased image's sources (paths_with_ids).

The class rule: the class is the first folder under the input root, or under Training/ or
Test/ when that is the top folder (the split); labels are folder names kept byte for byte
(spaces, digits, accents). A file directly under the root (or directly under a split) has no
class folder, and a file in a folder under its class folder is nested deeper than the layout
allows: both are rejected with that reason later (`no_class_folder`, `too_deep`), never
dropped nor relabelled. Files larger than --max-file-bytes are rejected (`file_too_large`) from
the listing's size, before their bytes are read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, LongType, StringType, StructField, StructType

from fruitlens import checksum
from fruitlens.config import Config
from fruitlens.pipeline import decode

log = logging.getLogger(__name__)

SPLITS = ("Training", "Test")
# What each file looks like in the outputs; with the settings and weights, it decides the rest
# (a rejection follows from the bytes), so listing and hashing alone can tell "unchanged".
INPUT_FIELDS = ("image_id", "path", "label", "split")


def read_binary_files(spark: SparkSession, input_uri: str) -> DataFrame:
    """Every file under the input, recursively, listed by Spark. Hidden files (.x, _x) are
    skipped, as the driver's listing skips them."""
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


def class_rule(relative: str) -> tuple[str | None, str | None, str | None]:
    """(label, split, refusal) of a file from its path under the input root: the rule of the
    module doc, as `with_names` applies it in Spark (tests check they agree)."""
    parts = relative.split("/")
    split = parts[0] if len(parts) >= 2 and parts[0] in SPLITS else None
    above = 1 if split else 0
    if len(parts) < above + 2:
        return None, None, decode.NO_CLASS_FOLDER
    if len(parts) > above + 2:
        return None, split, decode.TOO_DEEP
    return parts[above], split, None


def with_names(files: DataFrame, root: str) -> DataFrame:
    """Add image_id (SHA-256 of the bytes), rel_path, label, split and `refusal`: the reason
    the class rule (module doc) refuses the file for training, null when it names a class."""
    rel_path = F.substring(F.col("path"), len(root) + 2, 1 << 30)
    parts = F.split(rel_path, "/")
    depth = F.size(parts)
    top = F.element_at(parts, 1)
    split = F.when((depth >= 2) & top.isin(*SPLITS), top)
    # Folders above the file's class folder: one under a split, none otherwise.
    above = F.when(split.isNotNull(), 1).otherwise(0)
    class_folder = F.when(depth >= above + 2, F.element_at(parts, above + 1))
    refusal = (
        F.when(class_folder.isNull(), F.lit(decode.NO_CLASS_FOLDER))
        .when(depth > above + 2, F.lit(decode.TOO_DEEP))
        .otherwise(F.lit(None).cast("string"))
    )
    return files.select(
        F.sha2(F.col("content"), 256).alias("image_id"),
        F.col("path"),
        rel_path.alias("rel_path"),
        F.when(refusal.isNull(), class_folder).alias("label"),
        F.when(class_folder.isNotNull(), split).alias("split"),
        refusal.alias("refusal"),
        F.col("length"),
        F.col("content"),
    )


@dataclass
class Listed:
    """Every file the driver's listing found, by size, in Spark's path form (normalize_path):
    those to read, and those the listing alone turns into rejections, with no request to the
    storage: 0-byte files and files over --max-file-bytes."""

    max_file_bytes: int
    readable: dict[str, int] = field(default_factory=dict)  # path -> bytes
    empty: list[str] = field(default_factory=list)
    oversized: dict[str, int] = field(default_factory=dict)  # path -> bytes

    def note(self, uri: str, size: int) -> None:
        path = normalize_path(uri)
        if size == 0:
            self.empty.append(path)
        elif size > self.max_file_bytes:
            self.oversized[path] = size
        else:
            self.readable[path] = size

    @property
    def files(self) -> int:
        return len(self.readable) + len(self.empty) + len(self.oversized)


# What fruitlens's reader (java/fruitlens/spark/ReadListedFiles.java) is given and gives back.
LISTED_SCHEMA = StructType(
    [StructField("path", StringType(), False), StructField("length", LongType(), False)]
)
READ_SCHEMA = StructType([*LISTED_SCHEMA.fields, StructField("content", BinaryType(), False)])
# Files a read task holds at most: as many as Spark's file scan puts in one task when each small
# file counts as 1 MiB (session.TUNING's openCostInBytes) of its 128 MiB per task.
FILES_PER_READ_TASK = 128
# Reads in flight per task: enough to hide S3's ~20 ms per request behind each other, within a
# memory bound that a few files of --max-file-bytes (50 MB by default) can reach.
READS_IN_FLIGHT = 16
READ_BYTES_IN_FLIGHT = 64 << 20


def read_tasks(spark: SparkSession, files: int) -> int:
    """Tasks of at most FILES_PER_READ_TASK files, in whole waves of one task per core.

    Spark's file scan fills each task to the brim and leaves the rest to the last: 600 images
    on two cores made tasks of 128, 128, 128, 128 and 88, whose last wave kept one core idle
    while the other featurized 88 images. Six tasks of 100 keep both busy to the end.
    """
    cores = spark.sparkContext.defaultParallelism
    waves = max(1, -(-files // (cores * FILES_PER_READ_TASK)))
    return max(1, min(files, cores * waves))


def read_listed_files(spark: SparkSession, files: Mapping[str, int]) -> DataFrame:
    """(path, length, content) of each file in `files` (path -> bytes: Listed.readable).

    Read by fruitlens's JVM reader rather than Spark's binaryFile source: binaryFile asks for
    each file's status, and s3a's open asks again, two HEAD requests before each GET, one file
    after another in a task. The listing knows the lengths, so the reader opens each file with
    its length (one GET over s3a) and keeps several reads in flight per task (bench/README.md,
    "One GET per image"). The listing reaches the JVM as Arrow (a pandas frame), spread over
    read_tasks partitions.
    """
    jvm = spark.sparkContext._jvm
    if not files:
        # An empty pandas frame would go through a Python RDD (see with_unread).
        return spark.createDataFrame(spark.sparkContext.emptyRDD(), READ_SCHEMA)
    frame = spark.createDataFrame(
        pd.DataFrame(list(files.items()), columns=LISTED_SCHEMA.names), LISTED_SCHEMA
    ).repartition(read_tasks(spark, len(files)))
    reader = jvm.fruitlens.spark.ReadListedFiles(
        jvm.org.apache.spark.util.SerializableConfiguration(
            spark.sparkContext._jsc.hadoopConfiguration()
        ),
        READS_IN_FLIGHT,
        READ_BYTES_IN_FLIGHT,
    )
    encoder = jvm.org.apache.spark.sql.Encoders.row(
        spark._jsparkSession.parseDataType(READ_SCHEMA.json())
    )
    return DataFrame(frame._jdf.mapPartitions(reader, encoder), spark)


UNREAD_SCHEMA = StructType(
    [StructField(name, StringType()) for name in ("image_id", "path", "reason", "detail")]
)


def unread_files(spark: SparkSession, listed: Listed) -> DataFrame:
    """The unread files as rejections. An oversized file's bytes are not hashed: its image_id
    is the SHA-256 of its path; an empty file's is the SHA-256 of nothing."""
    rows = [
        (checksum.sha256(b""), path, decode.EMPTY_FILE, "0-byte file: nothing to read")
        for path in listed.empty
    ] + [
        (
            checksum.sha256(path.encode("utf-8")),
            path,
            decode.FILE_TOO_LARGE,
            f"{size} bytes exceeds max_file_bytes={listed.max_file_bytes}",
        )
        for path, size in listed.oversized.items()
    ]
    # From pandas the rows reach the JVM as Arrow batches (spark.sql.execution.arrow.pyspark
    # .enabled, session.TUNING), when there are any (see with_unread). From a Python list they
    # would pass through an RDD that Python workers re-serialize, with a daemon of their own
    # beside the featurize workers' (another Python start in every run, and another TensorFlow
    # import where the daemon preloads it).
    # One partition: each job over the union of every file would otherwise run a task more
    # per core, in the featurize job and in each read of its cached result.
    frame = spark.createDataFrame(pd.DataFrame(rows, columns=UNREAD_SCHEMA.names), UNREAD_SCHEMA)
    return frame.coalesce(1).select(
        F.col("image_id"),
        F.col("path"),
        F.lit(None).cast("string").alias("label"),
        F.lit(None).cast("string").alias("split"),
        F.lit(None).cast("array<float>").alias("features"),
        F.col("reason"),
        F.col("detail"),
    )


def with_unread(spark: SparkSession, scanned: DataFrame, listed: Listed) -> DataFrame:
    """`scanned` and the unread files' rejections (unread_files), by column name; `scanned`
    alone when the listing found none, as in most runs.

    Not a union with no rows: pyspark sends a pandas frame as Arrow only when it has rows. An
    empty one became a Python RDD, whose task started a second worker daemon that imported
    TensorFlow again beside the last featurize task: 4-5 s of a core at the end of every
    featurize job on a 2-core AMD EPYC Zen 3 (bench/README.md, "The tail of the featurize job").
    """
    if not (listed.empty or listed.oversized):
        return scanned
    return scanned.unionByName(unread_files(spark, listed), allowMissingColumns=True)


def hadoop_path_string(uri: str) -> str:
    """file:///a%20b -> file:/a b: the form binaryFile writes in its path column."""
    parts = urlsplit(uri)
    path = unquote(parts.path)
    return f"file:{path}" if parts.scheme == "file" else f"{parts.scheme}://{parts.netloc}{path}"


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


def listed_inputs(spark: SparkSession, config: Config, listed: Listed) -> DataFrame:
    """Every file under --input as the outputs name it, from listing and hashing alone."""
    root = qualified_root(spark, str(config.input))
    named = with_names(read_listed_files(spark, listed.readable), root)
    columns = [F.col(name) for name in INPUT_FIELDS]
    every_file = with_unread(spark, named.select(*columns), listed).select(*columns)
    return as_written(every_file, config)


def input_line() -> Column:
    """A file's (id, path, label, split) as the outputs name them, tab-separated (a missing
    field empty): what lines_digest hashes."""
    return F.concat_ws("\t", *(F.coalesce(F.col(name), F.lit("")) for name in INPUT_FIELDS))


def lines_digest(lines: Iterable[str]) -> str:
    """SHA-256 over the input lines sorted, newline-joined: the digest of a run's inputs.

    On the driver, which holds the listing already: the outcome counts bring the lines along
    (featurize.count_outcomes) instead of a job of their own. Python's order of strings is
    their UTF-8 bytes' order, as Spark's array_sort, which computed it before: the same digest
    as the fingerprints of runs committed then."""
    return checksum.sha256("\n".join(sorted(lines)).encode("utf-8"))


def inputs_digest(every_file: DataFrame) -> str:
    """lines_digest of every file (every_file: one row per file, with INPUT_FIELDS)."""
    return lines_digest(row[0] for row in every_file.select(input_line()).collect())


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
