"""`fruitlens erase`: the right to erasure over a run's outputs, with no half-erased state.

Every derived row of the named images is removed from the Parquet datasets (features/, pca/,
rejected/, predictions/) and the CSVs (resultats_pca.csv, predictions.csv). A reader never sees
a half-erased state:

1. each dataset that holds an erased row is written, filtered, to a NEW versioned prefix
   (features@2/, then features@3/ ...), and checked by counting;
2. run.json's `outputs` map is repointed to the new versions in one PUT (readers such as
   `fruitlens train --features` find the datasets through that map);
3. the CSVs are replaced, each in one PUT;
4. the old versions are deleted.

Then the source objects are deleted when --delete-source is given, an entry is appended to
`erasure-log.jsonl` (who, when, which content ids, how many rows per dataset; never a path),
and the report says whether the trained model saw any erased image and must be retrained.
Erasing the same ids again finds no row: every count is 0 and nothing is rewritten.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fruitlens import checksum, paths
from fruitlens.config import Config
from fruitlens.errors import Failure, UsageError
from fruitlens.outputs.storage import S3Location, Storage, local_path

log = logging.getLogger(__name__)

ERASURE_LOG = "erasure-log.jsonl"
# write.TRAINING_IDS: run.json names its version; `train` leaves it beside model/.
TRAINING_IDS = "training_image_ids"
DATASETS = ("features", "pca", "rejected", "predictions")
CSV_FILES = ("resultats_pca.csv", "predictions.csv")
_ID = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"@(\d+)$")


# --- naming ----------------------------------------------------------------------------------
def normalize_path(path: str) -> str:
    """A source path in the form Spark's binaryFile stores it (file:/abs/path or s3a://b/k)."""
    from fruitlens.pipeline.images import hadoop_path_string

    if path.startswith("s3://"):
        return "s3a://" + path[len("s3://") :]
    if path.startswith("s3a://"):
        return path
    if path.startswith("file://"):
        return hadoop_path_string(path)
    if path.startswith("file:"):
        return path
    return "file:" + os.path.abspath(path)


def next_version(output: str, name: str, current: str) -> str:
    found = _VERSION.search(current.rstrip("/"))
    version = int(found.group(1)) + 1 if found else 2
    return paths.join(output, f"{name}@{version}")


def content_id(storage: Storage, uri: str) -> str | None:
    """SHA-256 of a source object's bytes (the image_id every output uses), None if gone."""
    try:
        if not storage.exists(uri) or (not paths.is_s3(uri) and local_path(uri).is_dir()):
            return None
        return checksum.sha256(storage.read_bytes(uri))
    except Exception:
        return None


def delete_object(storage: Storage, uri: str) -> bool:
    if paths.is_s3(uri):
        location = S3Location.parse(uri)
        if not storage._object_exists(location):
            return False
        storage.s3.delete_object(Bucket=location.bucket, Key=location.key)
        return True
    target = local_path(uri)
    if target.is_file():
        target.unlink()
        return True
    return False


# --- the command -----------------------------------------------------------------------------
def erase_command(config: Config) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from fruitlens import session
    from fruitlens.outputs import names
    from fruitlens.outputs import report as run_report
    from fruitlens.outputs.commit import write_json, write_parquet

    storage = Storage(config)
    if not config.output:
        raise UsageError("--output is required (the --output folder of a run)")
    if not config.image_id and not config.path:
        raise UsageError("name the images to erase with --image-id ID or --path P (repeatable)")
    bad = [value for value in config.image_id if not _ID.match(value.strip().lower())]
    if bad:
        raise UsageError(f"--image-id {bad[0]!r} is not a SHA-256 content id (64 hex digits)")
    output = config.output.rstrip("/")
    run_json = paths.join(output, names.RUN_JSON)
    if not storage.exists(run_json):
        raise UsageError(f"{output} holds no {names.RUN_JSON}: pass the --output folder of a run")
    document = json.loads(storage.read_bytes(run_json))
    outputs: dict[str, str] = dict(document.get("outputs") or {})

    spark = session.start_session(config, "fruitlens-erase")
    located = {
        name: outputs.get(name, paths.join(output, name))
        for name in DATASETS
        if storage.has_children(outputs.get(name, paths.join(output, name)))
    }
    frames = {name: spark.read.parquet(uri) for name, uri in located.items()}

    # 1. which content ids: given, plus those of the given paths (stored path or current bytes)
    ids = {value.strip().lower() for value in config.image_id}
    wanted_paths = [normalize_path(p) for p in config.path]
    for original, normalized in zip(config.path, wanted_paths, strict=True):
        for candidate in {original, normalized}:
            found = content_id(storage, candidate)
            if found:
                ids.add(found)
    if wanted_paths:
        for name in ("features", "rejected"):  # pca/ and predictions/ repeat these paths
            frame = frames.get(name)
            if frame is not None and "path" in frame.columns:
                rows = frame.where(F.col("path").isin(wanted_paths)).select("image_id").distinct()
                ids.update(row["image_id"] for row in rows.collect())
    id_list = sorted(ids)
    matches = F.col("image_id").isin(id_list)

    # 2. what the model saw, decided before anything changes
    model = model_verdict(spark, storage, output, outputs, frames.get("features"), id_list)

    # 3. sources to delete: stored paths of the erased rows, plus the paths given
    sources: set[str] = set()
    if config.delete_source:
        sources.update(wanted_paths)
        sources.update(stored_sources(frames, matches))
        if id_list and document.get("config", {}).get("pseudonymize") and document.get("input"):
            sources.update(scan_input(spark, str(document["input"]), id_list))

    # 4. new versions of the datasets that hold erased rows
    counts: dict[str, int] = {}
    rejected_reasons: dict[str, int] = {}
    rewritten: dict[str, str] = {}
    for name, frame in frames.items():
        if not id_list:
            counts[name] = 0
            continue
        stats = frame.agg(
            F.count(F.lit(1)).alias("total"),
            F.sum(F.when(matches, 1).otherwise(0)).alias("erased"),
        ).first()
        before, erased = int(stats["total"]), int(stats["erased"] or 0)
        counts[name] = erased
        if not erased:
            continue
        if name == "rejected" and "reason" in frame.columns:
            rejected_reasons = {
                row["reason"]: int(row["count"])
                for row in frame.where(matches).groupBy("reason").count().collect()
            }
        target = next_version(output, name, located[name])
        if storage.has_children(target):  # left by an erase that failed: never referenced
            storage.delete_tree(target)
        write_parquet(frame.where(~matches), target)
        after = spark.read.parquet(target).count()
        if after != before - erased:
            raise Failure(f"{name}: {before} - {erased} rows expected, {after} written")
        rewritten[name] = target

    # 5. the CSVs, filtered to local files now, put in place after run.json
    csv_ready: dict[str, Path] = {}
    workdir = tempfile.TemporaryDirectory(prefix="fruitlens-erase-")
    try:
        for name in CSV_FILES:
            uri = outputs.get(name, paths.join(output, name))
            if not id_list or not storage.exists(uri):
                continue
            filtered, erased = filter_csv(storage, uri, ids, Path(workdir.name) / name)
            counts[name] = erased
            if erased:
                csv_ready[uri] = filtered

        # 6. repoint run.json in one PUT, then the CSVs, then drop the old versions
        if rewritten or csv_ready:
            document["outputs"] = {**outputs, **rewritten}
            adjust_counts(document, counts, rejected_reasons)
            # The outputs no longer match the input they were made from: an --incremental rerun
            # must recompute them rather than keep them as they are.
            document.pop("fingerprint", None)
            digests = document.setdefault(names.FILES_SHA256, {})
            for uri, filtered in csv_ready.items():
                digests[uri.rsplit("/", 1)[-1]] = checksum.sha256(filtered)
            write_json(document, run_json, storage)
            for uri, filtered in csv_ready.items():
                storage.upload(filtered, uri, "text/csv; charset=utf-8")
            for name in rewritten:
                storage.delete_tree(located[name])
    finally:
        workdir.cleanup()

    deleted = sum(delete_object(storage, uri) for uri in sorted(sources))
    entry = {
        "at": datetime.now(timezone.utc).isoformat(),
        "who": run_report.caller_identity(config),
        "image_ids": id_list,
        "requested": {"image_ids": len(config.image_id), "paths": len(config.path)},
        "rows_erased": counts,
        "datasets_rewritten": sorted(rewritten),
        "sources_deleted": deleted,
        "model": model,
        # PCA basis, plots and evaluation.json are aggregates computed with these images.
        "aggregates_recompute_recommended": counts.get("features", 0) > 0,
        "no_op": not (rewritten or csv_ready or deleted),
    }
    append_log(storage, paths.join(output, ERASURE_LOG), entry)
    log.info("erase: %d ids, rows erased %s, %d sources deleted", len(id_list), counts, deleted)
    return {
        "command": "erase",
        "output": output,
        "erasure_log": paths.join(output, ERASURE_LOG),
        **{key: value for key, value in entry.items() if key != "who"},
    }


def stored_sources(frames: dict[str, Any], matches: Any) -> set[str]:
    """Source paths recorded in the outputs for the erased rows (none when pseudonymized)."""
    found: set[str] = set()
    for name in ("features", "rejected"):
        frame = frames.get(name)
        if frame is None or "path" not in frame.columns:
            continue
        for row in frame.where(matches).select("image_id", "path").distinct().collect():
            if row["path"] and row["path"] != row["image_id"]:
                found.add(row["path"])
    return found


def scan_input(spark: Any, input_uri: str, id_list: list[str]) -> set[str]:
    """Pseudonymized outputs hold no path: find the sources by hashing the run's input."""
    from pyspark.sql import functions as F

    from fruitlens.pipeline import images

    try:
        files = images.read_binary_files(spark, input_uri)
        rows = files.where(F.sha2(F.col("content"), 256).isin(id_list)).select("path").collect()
    except Exception as exc:  # the input may be gone already: nothing left to delete there
        log.warning("could not scan %s for sources: %s", input_uri, type(exc).__name__)
        return set()
    return {row["path"] for row in rows}


def filter_csv(storage: Storage, uri: str, ids: set[str], target: Path) -> tuple[Path, int]:
    """Copy a CSV without the rows whose image_id is erased; streamed, never all in memory."""
    source = storage.download(uri, target.with_suffix(".orig"))
    erased = 0
    with (
        source.open(newline="", encoding="utf-8") as reader_handle,
        target.open("w", newline="", encoding="utf-8") as writer_handle,
    ):
        reader = csv.reader(reader_handle)
        writer = csv.writer(writer_handle)
        header = next(reader, None)
        if header is None or "image_id" not in header:
            return target, 0
        column = header.index("image_id")
        writer.writerow(header)
        for row in reader:
            if len(row) > column and row[column] in ids:
                erased += 1
                continue
            writer.writerow(row)
    source.unlink()
    return target, erased


def adjust_counts(
    document: dict[str, Any], counts: dict[str, int], reasons: dict[str, int]
) -> None:
    """run.json's image counts describe the outputs as they now are."""
    images = document.get("images")
    if isinstance(images, dict) and "processed" in images:
        images["processed"] = images.get("processed", 0) - counts.get("features", 0)
        images["rejected"] = images.get("rejected", 0) - counts.get("rejected", 0)
        by_reason = dict(images.get("rejected_by_reason") or {})
        for reason, count in reasons.items():
            left = by_reason.get(reason, 0) - count
            if left > 0:
                by_reason[reason] = left
            else:
                by_reason.pop(reason, None)
        images["rejected_by_reason"] = by_reason
        images["listed"] = images["processed"] + images["rejected"]
    summary = document.setdefault("erasure", {"requests": 0, "rows_erased": {}})
    summary["requests"] += 1
    summary["last_at"] = datetime.now(timezone.utc).isoformat()
    for name, count in counts.items():
        summary["rows_erased"][name] = summary["rows_erased"].get(name, 0) + count


def model_verdict(
    spark: Any,
    storage: Storage,
    output: str,
    outputs: dict[str, str],
    features: Any,
    id_list: list[str],
) -> dict[str, Any]:
    """Did the trained model see an erased image? Exact when the training ids are stored."""
    from pyspark.sql import functions as F

    card_uri = outputs.get("model.json", paths.join(output, "model.json"))
    if not storage.exists(card_uri):
        return {"trained_model": False, "retrain_required": False}
    card = json.loads(storage.read_bytes(card_uri))
    model_root = card_uri.rsplit("/", 1)[0]
    ids_uri = outputs.get(TRAINING_IDS, paths.join(model_root, TRAINING_IDS))
    verdict: dict[str, Any] = {"trained_model": True, "model": model_root}
    if storage.has_children(ids_uri):
        seen = spark.read.parquet(ids_uri).where(F.col("image_id").isin(id_list)).count()
        verdict.update(erased_images_in_training=seen, retrain_required=seen > 0, exact=True)
        return verdict
    digest = card.get("trained_on_image_ids_sha256")
    if features is not None and digest and "split" in features.columns:
        # Without the stored list, the Training split of the features reproduces the digest
        # when it is the set the model was trained on.
        training = features.where(F.col("split") == "Training")
        joined = F.concat_ws(",", F.sort_array(F.collect_list("image_id")))
        if training.select(F.sha2(joined, 256)).first()[0] == digest:
            seen = training.where(F.col("image_id").isin(id_list)).count()
            verdict.update(erased_images_in_training=seen, retrain_required=seen > 0, exact=True)
            return verdict
    verdict.update(
        erased_images_in_training=None,
        retrain_required=bool(id_list),
        exact=False,
        why="the training set cannot be reconstructed; retrain to be sure",
    )
    return verdict


def append_log(storage: Storage, uri: str, entry: dict[str, Any]) -> None:
    """Append one JSON line (read, append, one PUT: the log is small and written rarely)."""
    existing = storage.read_bytes(uri) if storage.exists(uri) else b""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    line = json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    storage.write_bytes(uri, existing + line.encode("utf-8"), "application/x-ndjson")
