"""`fruitlens sanitize`: copy images with every metadata block removed and the pixels unchanged.

JPEG and PNG are rewritten at the byte level, other formats re-encoded losslessly as PNG, files
that are not images listed as rejected (pipeline/metadata.py). Plain Python over Storage (local
folders or S3 through boto3, every write with the configured SSE), one file at a time; the
per-file report goes beside the copies.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from fruitlens import checksum, paths
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import names
from fruitlens.outputs.commit import write_json
from fruitlens.outputs.report import RunReport
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import metadata

log = logging.getLogger(__name__)


def sanitize_command(config: Config) -> dict[str, Any]:
    storage = Storage(config)
    if not config.input or not config.output:
        raise UsageError("--input and --output are both required")
    if not storage.exists(config.input) or not storage.has_children(config.input):
        raise UsageError(f"input {config.input} does not exist or is empty")
    if storage.has_children(config.output) and not config.overwrite:
        raise UsageError(
            f"output {config.output} already holds files; pass --overwrite to replace them"
        )
    report = RunReport("sanitize", config)
    files: list[dict[str, Any]] = []
    removed_totals: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    written: set[str] = set()
    with report.stage("sanitize"):
        for uri, relative, _ in storage.list_files(config.input):
            totals["listed"] += 1
            if paths.is_hidden(relative):
                totals["skipped_hidden"] += 1
                continue
            data = storage.read_bytes(uri)
            image_id = checksum.sha256(data)
            entry: dict[str, Any] = {"image_id": image_id}
            if not config.pseudonymize:
                entry["path"] = relative
            try:
                cleaned = metadata.clean(data, config.max_pixels)
            except metadata.NotAnImage as exc:
                totals["rejected"] += 1
                entry.update(status="rejected", reason=str(exc))
                files.append(entry)
                continue
            target = metadata.output_name(relative, cleaned)
            if target in written:
                totals["rejected"] += 1
                entry.update(
                    status="rejected", reason=f"another file is already written as {target}"
                )
                files.append(entry)
                continue
            written.add(target)
            storage.write_bytes(
                paths.join(config.output, target), cleaned.data, metadata.mime_type(cleaned)
            )
            status = (
                "converted"
                if cleaned.converted_to
                else ("sanitized" if cleaned.removed else "unchanged")
            )
            totals[status] += 1
            removed_totals.update(set(cleaned.removed))
            entry.update(
                status=status,
                format=cleaned.fmt,
                removed=cleaned.removed,
                sanitized_id=checksum.sha256(cleaned.data),
                bytes_before=len(data),
                bytes_after=len(cleaned.data),
            )
            if not config.pseudonymize and target != relative:
                entry["output_path"] = target
            if cleaned.note:
                entry["note"] = cleaned.note
            files.append(entry)
    totals["written"] = totals["sanitized"] + totals["unchanged"] + totals["converted"]
    report.sections["totals"] = {
        **{
            key: totals.get(key, 0)
            for key in (
                "listed",
                "written",
                "sanitized",
                "unchanged",
                "converted",
                "rejected",
                "skipped_hidden",
            )
        },
        "files_with": dict(sorted(removed_totals.items())),
    }
    report.sections["files"] = files
    document = report.to_dict()
    write_json(document, paths.join(config.output, names.SANITIZE_REPORT), storage)
    log.info(
        "sanitize: %d written (%d had metadata), %d rejected",
        totals["written"],
        totals["sanitized"],
        totals["rejected"],
    )
    return {
        "command": "sanitize",
        "output": config.output,
        "report": paths.join(config.output, names.SANITIZE_REPORT),
        "totals": report.sections["totals"],
    }
