"""Writing results: Parquet datasets through Spark, single files (CSV, JSON, PNG) via Storage.

Outputs are committed, never half-written (docs/OPERATIONS.md): `OutputCommit` writes each
Parquet dataset of a command to a NEW version prefix when the output already holds a run
(`features@2/`, `features@3/` ...; a fresh output keeps the plain names), puts the single files
(CSV, plots, model.json, evaluation.json) once every dataset is written, then the manifest
(run.json) in one PUT naming the new versions in its `outputs` map -- the commit point -- and
only then deletes the versions it replaced. The map holds names relative to the run
(`features@2`), resolved against the run's own folder (`resolve_stored`), so a moved or copied
run names its own files. Readers resolve datasets through that map (`dataset_location`), as
`fruitlens erase` and `commands.preflight.read_features` do. A run killed before the manifest
leaves the previous run.json pointing at the previous, complete versions; the next run deletes
the unreferenced versions it finds and aborts pending multipart uploads.
"""

from __future__ import annotations

import atexit
import csv
import json
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from fruitlens import checksum, paths, redact
from fruitlens.errors import UsageError
from fruitlens.outputs.names import (
    FILES_SHA256,
    MODEL,
    RUN_JSON,
    SINGLE_OUTPUTS,
    TRAINING_IDS,
    VERSIONED,
)
from fruitlens.outputs.storage import Storage

log = logging.getLogger(__name__)

# What an interrupted Spark/s3a write leaves beside or inside a dataset.
WRITER_LEFTOVERS = ("_temporary", "__magic", ".spark-staging")
_VERSION = re.compile(r"^(?P<name>[^@/]+)@(?P<version>\d+)$")


def write_parquet(frame: DataFrame, uri: str) -> None:
    # Overwrite is safe here: the target is a fresh version prefix (OutputCommit) or the CLI
    # refused a non-empty output unless --overwrite was given.
    frame.write.mode("overwrite").parquet(uri)


def write_csv_file(frame: DataFrame, local: Path) -> int:
    """One CSV file for the client, streamed partition by partition (memory stays flat)."""
    rows = 0
    with local.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(frame.columns)
        for row in frame.toLocalIterator(prefetchPartitions=True):
            writer.writerow(_csv_value(value) for value in row)
            rows += 1
    return rows


def _csv_value(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


def json_text(document: dict[str, Any], indent: int | None = 2) -> str:
    """Every JSON document fruitlens writes, with secret-looking values redacted."""
    return json.dumps(
        redact.scrub(document), indent=indent, sort_keys=True, ensure_ascii=False, default=str
    )


def write_json(document: dict[str, Any], uri: str, storage: Storage) -> None:
    storage.write_bytes(uri, json_text(document).encode("utf-8"), "application/json")


# --- the commit --------------------------------------------------------------------------------
def base_name(entry: str) -> str:
    """features@3 -> features; anything else unchanged."""
    found = _VERSION.match(entry)
    return found.group("name") if found else entry


def version_of(uri: str) -> int:
    """features -> 1, features@3 -> 3 (the last path component decides)."""
    found = _VERSION.match(uri.rstrip("/").rsplit("/", 1)[-1])
    return int(found.group("version")) if found else 1


class ManifestError(UsageError):
    """run.json names a location outside its own run: refused, never read nor deleted."""


def stored_name(output: str, uri: str) -> str:
    """How run.json names a location under the run (`uri`, as a writer made it from `output`):
    relative to the run (`features@2`), so a moved or copied run still names its own files."""
    output = output.rstrip("/")
    if uri.startswith(output + "/"):  # also a relative --output (out/small/features@2)
        uri = uri[len(output) + 1 :]
    return resolve_stored(output, uri)[len(output) + 1 :]


def resolve_stored(output: str, stored: str, recorded_output: str | None = None) -> str:
    """The URI under `output` of a location named by its run.json (or given to a writer).

    New manifests hold names relative to the run. An older manifest's absolute (or
    working-directory relative) URI under the folder it recorded as `output` is taken relative
    to that folder, so a copied run names its own files, never the original's. Anything else
    (a `..`, a location outside the run) is refused: nothing outside --output is ever read for
    rewriting or deleted.
    """
    output = output.rstrip("/")
    text = stored.strip()
    recorded = (recorded_output or "").rstrip("/")
    if recorded and text.startswith(recorded + "/"):
        text = text[len(recorded) + 1 :]
    elif paths.is_s3(text) or text.startswith(("/", "file:")):
        if recorded and paths.inside(text, recorded):
            text = paths.normalized(text)[len(paths.normalized(recorded)) :]
        elif paths.inside(text, output):
            text = paths.normalized(text)[len(paths.normalized(output)) :]
        else:
            raise ManifestError(f"{stored!r} lies outside the run {output}: refused")
    parts = [part for part in text.replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts or ".." in parts or "\x00" in text:
        raise ManifestError(f"{stored!r} is not a location inside the run {output}: refused")
    uri = paths.join(output, *parts)
    if not paths.inside(uri, output) or paths.normalized(uri) == paths.normalized(output):
        # A symbolic link under the run that leads out of it.
        raise ManifestError(f"{stored!r} leads outside the run {output}: refused")
    return uri


def resolved_outputs(output: str, document: dict[str, Any]) -> dict[str, str]:
    """run.json's `outputs` map as URIs under `output`; an entry naming a location outside
    the run (an older manifest copied from elsewhere) is left out, with a warning."""
    found = {}
    for name, stored in (document.get("outputs") or {}).items():
        try:
            found[name] = resolve_stored(output, str(stored), document.get("output"))
        except ManifestError as exc:
            log.warning("run.json under %s: ignoring output %s: %s", output, name, exc)
    return found


def committed_manifest(output: str, storage: Storage, manifest: str = RUN_JSON) -> dict[str, Any]:
    """The manifest (run.json) last committed under the output ({} when there is none)."""
    uri = paths.join(output, manifest)
    if not storage.exists(uri):
        return {}
    return json.loads(storage.read_bytes(uri))


def dataset_location(output: str, document: dict[str, Any], name: str) -> str:
    """Where a committed run keeps a dataset: its run.json names the current version (erasure
    and reruns swap versions through that map); the plain name for manifests without one.
    Always inside `output` (`resolve_stored`), or ManifestError."""
    stored = (document.get("outputs") or {}).get(name, name)
    return resolve_stored(output, str(stored), document.get("output"))


class OutputCommit:
    """One command's outputs, made visible all at once by its manifest (see the module doc).

    Use: `begin` (cleans what a failed run left), `parquet` for each dataset, `put_bytes` /
    `put_file` for single objects (held back until `finish`), then `finish(document)`.
    """

    def __init__(self, output: str, storage: Storage, manifest: str = RUN_JSON) -> None:
        self.output = output.rstrip("/")
        self.storage = storage
        # run.json for every command but `train`, whose model folder has train.json.
        self.manifest = manifest
        self.previous_document = committed_manifest(self.output, storage, manifest)
        self.previous = resolved_outputs(self.output, self.previous_document)
        if self.previous_document and not self.previous:
            # A manifest from before outputs were versioned: the plain names are current.
            self.previous = {
                name: paths.join(self.output, name)
                for name in (*VERSIONED, *SINGLE_OUTPUTS)
                if storage.exists(paths.join(self.output, name))
            }
        if MODEL in self.previous and TRAINING_IDS not in self.previous:
            # run.json from before this commit named model/ but not the ids saved beside it.
            beside = self.previous[MODEL].rstrip("/").rsplit("/", 1)[0]
            self.previous[TRAINING_IDS] = paths.join(beside, TRAINING_IDS)
        versions = [version_of(self.previous[n]) for n in VERSIONED if n in self.previous]
        # A fresh output keeps the plain names; over a committed run, the next version.
        self.version = max(versions, default=1) + 1 if self.previous_document else 1
        self.written: dict[str, str] = {}
        self.carried_digests: dict[str, str] = {}
        self._pending: list[tuple[str, Path | bytes, str]] = []
        self._workdir = Path(tempfile.mkdtemp(prefix="fruitlens-commit-"))
        atexit.register(shutil.rmtree, self._workdir, True)  # also when the run fails

    @classmethod
    def begin(cls, output: str, storage: Storage, manifest: str = RUN_JSON) -> OutputCommit:
        commit = cls(output, storage, manifest)
        commit.remove_leftovers()
        return commit

    # --- what a failed run left ----------------------------------------------------------
    def remove_leftovers(self) -> list[str]:
        """Delete our outputs (dataset versions, single outputs) and writer debris that the
        committed run.json does not name, and abort pending multipart uploads under the output
        (one writer per output at a time). Other files (erasure-log.jsonl ...) stay."""
        if not self.storage.has_children(self.output):
            return []
        referenced = {uri.rstrip("/") for uri in self.previous.values()}
        ours = {*VERSIONED, *SINGLE_OUTPUTS}
        removed = []
        for entry in self.storage.list_children(self.output):
            uri = paths.join(self.output, entry)
            # .run.json.<pid>.partial: a local single-file write interrupted before its rename.
            leftover = entry.startswith(WRITER_LEFTOVERS) or entry.endswith(".partial")
            if (base_name(entry) in ours or leftover) and uri not in referenced:
                self.storage.delete_tree(uri)
                removed.append(entry)
        aborted = self.storage.abort_multipart_uploads(self.output)
        if removed or aborted:
            log.warning(
                "removed what an earlier, failed run left under %s: %s; %d pending uploads aborted",
                self.output,
                ", ".join(removed) or "no folder",
                aborted,
            )
        return removed

    # --- writing ---------------------------------------------------------------------------
    def dataset_uri(self, name: str) -> str:
        return resolve_stored(self.output, name if self.version == 1 else f"{name}@{self.version}")

    def folder(self, name: str) -> str:
        """The new version's location for a folder another writer fills (Spark ML's)."""
        uri = self.dataset_uri(name)
        self.written[name] = uri
        return uri

    def parquet(self, frame: DataFrame, name: str) -> str:
        uri = self.folder(name)
        write_parquet(frame, uri)
        return uri

    def keep_previous(self) -> None:
        """Commit the previous run's outputs as this run's (nothing is rewritten or deleted)."""
        self.written.update(self.previous)
        self.carried_digests.update(self.previous_document.get(FILES_SHA256) or {})

    def put_bytes(self, name: str, data: bytes, content_type: str) -> str:
        """A single object (name relative to the output), put after the datasets."""
        uri = resolve_stored(self.output, name)
        self._pending.append((name, data, content_type))
        return uri

    def put_file(self, name: str, local: Path, content_type: str) -> str:
        uri = resolve_stored(self.output, name)
        self._pending.append((name, local, content_type))
        return uri

    def put_json(self, name: str, document: dict[str, Any]) -> str:
        return self.put_bytes(name, json_text(document).encode("utf-8"), "application/json")

    def put_csv(self, name: str, frame: DataFrame) -> int:
        local = self._workdir / name.replace("/", "_")
        rows = write_csv_file(frame, local)
        self.put_file(name, local, "text/csv; charset=utf-8")
        return rows

    def pending(self, name: str) -> bytes | None:
        """A single object this commit will put, as bytes (None if it puts no such object)."""
        for pending_name, data, _ in self._pending:
            if pending_name == name:
                return data.read_bytes() if isinstance(data, Path) else data
        return None

    def finish(self, document: dict[str, Any], produced: list[str]) -> dict[str, Any]:
        """Put the single objects, then the manifest (the commit), then drop what it replaced.

        `produced`: every top-level name this command made (datasets and single outputs).
        """
        try:
            digests = dict(self.carried_digests)
            for name, data, content_type in self._pending:
                uri = resolve_stored(self.output, name)
                if isinstance(data, Path):
                    self.storage.upload(data, uri, content_type)
                    digests[name] = checksum.sha256(data)
                else:
                    self.storage.write_bytes(uri, data, content_type)
                    digests[name] = checksum.sha256(data)
            outputs = {name: paths.join(self.output, name) for name in produced}
            outputs.update(self.written)
            if self.previous_document.get("command") not in (None, document.get("command")):
                # Another command's manifest (evaluate --output RUN): keep what it names.
                outputs = {**self.previous, **outputs}
                digests = {**(self.previous_document.get(FILES_SHA256) or {}), **digests}
            document["outputs"] = {
                name: stored_name(self.output, uri) for name, uri in sorted(outputs.items())
            }
            document[FILES_SHA256] = dict(sorted(digests.items()))
            write_json(document, paths.join(self.output, self.manifest), self.storage)
            current = {uri.rstrip("/") for uri in outputs.values()}
            for name, uri in self.previous.items():
                # `previous` holds only locations inside this output (resolved_outputs).
                ours = base_name(name) in VERSIONED or name in SINGLE_OUTPUTS
                if ours and uri.rstrip("/") not in current:
                    self.storage.delete_tree(uri)
        finally:
            shutil.rmtree(self._workdir, ignore_errors=True)
        return document
