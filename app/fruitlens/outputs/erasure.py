"""What erasure does to a run's outputs (see commands/erase.py): new versions of the datasets
without the erased rows, the CSVs filtered, run.json's counts corrected, the log appended."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fruitlens import paths
from fruitlens.errors import Failure
from fruitlens.outputs import names
from fruitlens.outputs.commit import OutputCommit, dataset_location, json_text, resolve_stored
from fruitlens.outputs.storage import Storage


def locate(
    output: str, document: dict[str, Any], storage: Storage
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """run.json's `outputs` as locations, the datasets found, and those it names that are gone.

    Every location is resolved against this run (never the current directory, never another
    run that a copied run.json names): nothing outside the run is rewritten or deleted.
    """
    outputs = {
        name: resolve_stored(output, str(stored), document.get("output"))
        for name, stored in (document.get("outputs") or {}).items()
    }
    expected = {name: dataset_location(output, document, name) for name in names.DATASETS}
    located = {name: uri for name, uri in expected.items() if storage.has_children(uri)}
    missing = sorted(name for name in outputs if name in names.DATASETS and name not in located)
    return outputs, located, missing


def content_ids(
    frames: dict[str, Any],
    storage: Storage,
    given_ids: list[str],
    given_paths: list[str],
    normalized_paths: list[str],
) -> set[str]:
    """The content ids to erase: those given, plus those of the given paths, found from the
    file's current bytes or from the path stored with its rows."""
    from pyspark.sql import functions as F

    ids = {value.strip().lower() for value in given_ids}
    for original, normalized in zip(given_paths, normalized_paths, strict=True):
        ids.update(filter(None, (storage.sha256(c) for c in {original, normalized})))
    if normalized_paths:
        for name in (names.FEATURES, names.REJECTED):  # pca/, predictions/ repeat these paths
            frame = frames.get(name)
            if frame is not None and "path" in frame.columns:
                matching = frame.where(F.col("path").isin(normalized_paths))
                ids.update(
                    row["image_id"] for row in matching.select("image_id").distinct().collect()
                )
    return ids


def stored_sources(frames: dict[str, Any], matches: Any) -> set[str]:
    """Source paths recorded in the outputs for the erased rows (none when pseudonymized)."""
    found: set[str] = set()
    for name in (names.FEATURES, names.REJECTED):
        frame = frames.get(name)
        if frame is None or "path" not in frame.columns:
            continue
        for row in frame.where(matches).select("image_id", "path").distinct().collect():
            if row["path"] and row["path"] != row["image_id"]:
                found.add(row["path"])
    return found


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
        images["processed"] = images.get("processed", 0) - counts.get(names.FEATURES, 0)
        images["rejected"] = images.get("rejected", 0) - counts.get(names.REJECTED, 0)
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


def append_log(storage: Storage, uri: str, entry: dict[str, Any]) -> None:
    """Append one JSON line (read, append, one PUT: the log is small and written rarely)."""
    existing = storage.read_bytes(uri) if storage.exists(uri) else b""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    line = json_text(entry, indent=None) + "\n"
    storage.write_bytes(uri, existing + line.encode("utf-8"), "application/x-ndjson")


def rewrite_datasets(
    commit: OutputCommit, frames: dict[str, Any], id_list: list[str]
) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Each dataset holding an erased row, filtered, as a new version of the commit (checked by
    counting): rows erased per dataset, rejections erased per reason, the datasets rewritten."""
    from pyspark.sql import functions as F

    matches = F.col("image_id").isin(id_list)
    counts: dict[str, int] = {}
    rejected_reasons: dict[str, int] = {}
    rewritten: list[str] = []
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
        if name == names.REJECTED and "reason" in frame.columns:
            rejected_reasons = {
                row["reason"]: int(row["count"])
                for row in frame.where(matches).groupBy("reason").count().collect()
            }
        target = commit.parquet(frame.where(~matches), name)
        after = frame.sparkSession.read.parquet(target).count()
        if after != before - erased:
            raise Failure(f"{name}: {before} - {erased} rows expected, {after} written")
        rewritten.append(name)
    return counts, rejected_reasons, rewritten


def rewrite_csvs(
    commit: OutputCommit,
    storage: Storage,
    outputs: dict[str, str],
    ids: set[str],
    counts: dict[str, int],
    workdir: Path,
) -> bool:
    """Each CSV of the run without the erased rows, staged in the commit (one PUT each at
    finish); its erased-row count goes into `counts`. Whether any CSV changed."""
    changed = False
    for name in names.CSV_FILES:
        uri = outputs.get(name, paths.join(commit.output, name))
        if not ids or not storage.exists(uri):
            continue
        filtered, erased = filter_csv(storage, uri, ids, workdir / name)
        counts[name] = erased
        if erased:
            commit.put_file(name, filtered, "text/csv; charset=utf-8")
            changed = True
    return changed
