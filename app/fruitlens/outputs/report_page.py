"""Gathering what report.html shows from a run's stored outputs.

The page itself is rendered by report_html (pure); this module reads the data it needs:
run.json's document, evaluation.json and the plots (single files), the rejected files and,
with --report-thumbnails, the misclassified Test images (Parquet datasets, read on the driver
without Spark: they are small). `run` and `evaluate` call `commit_page` with their commit's
pending files; `fruitlens report` (commands/report.py) reads a committed run the same way and
commits the page with an updated run.json, so its digest is always in `files_sha256`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from fruitlens import paths
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import names, report_html
from fruitlens.outputs.commit import OutputCommit
from fruitlens.outputs.report_html import ReportData
from fruitlens.outputs.storage import Storage, local_path

log = logging.getLogger(__name__)

PLOT_NAMES = (names.PCA_SCATTER_PNG,)


def read_table(uri: str, storage: Storage, columns: list[str]) -> pd.DataFrame:
    """A Parquet dataset written by Spark, read on the driver (local folder or S3 prefix)."""
    if not paths.is_s3(uri):
        return pd.read_parquet(local_path(uri), columns=columns)
    with tempfile.TemporaryDirectory(prefix="fruitlens-report-") as folder:
        parts = [key for key in storage.list_keys(uri) if key.endswith(".parquet")]
        for index, key in enumerate(parts):
            storage.download(key, Path(folder) / f"part-{index:05d}.parquet")
        if not parts:
            return pd.DataFrame(columns=columns)
        return pd.read_parquet(folder, columns=columns)


def report_data(
    document: dict[str, Any],
    datasets: dict[str, str],
    single_file: Callable[[str], bytes | None],
    storage: Storage,
    thumbnails: bool,
    location: str | None = None,
) -> ReportData:
    """The page's data: `datasets` maps dataset names to their current version's URI,
    `single_file(name)` returns a single output's bytes (None when there is none)."""
    evaluation_bytes = single_file(names.EVALUATION_JSON)
    plots = {}
    for name in PLOT_NAMES:
        found = single_file(name)
        if found:
            plots[name] = found
    rejected: list[dict[str, Any]] = []
    if names.REJECTED in datasets:
        table = read_table(datasets[names.REJECTED], storage, ["path", "reason", "detail"])
        table = table.sort_values("path").head(report_html.MAX_REJECTED_ROWS)
        rejected = table.astype(object).where(table.notna(), None).to_dict("records")
    data = ReportData(document, None, plots, rejected, location=location)
    if evaluation_bytes:
        data.evaluation = json.loads(evaluation_bytes)
    if thumbnails and names.PREDICTIONS in datasets:
        data.thumbnails = misclassified_thumbnails(datasets[names.PREDICTIONS], storage, document)
    return data


def misclassified_thumbnails(
    predictions: str, storage: Storage, document: dict[str, Any]
) -> list[report_html.Thumbnail]:
    if (document.get("config") or {}).get("pseudonymize"):
        log.warning("--report-thumbnails: the run is pseudonymized, its paths name no image")
        return []
    table = read_table(predictions, storage, ["path", "label", "predicted_label"])
    wrong = table[table["label"] != table["predicted_label"]].sort_values("path")
    return report_html.thumbnails(wrong.to_dict("records"), storage.read_bytes)


def commit_page(data: ReportData, commit: OutputCommit) -> str:
    """Add report.html, rendered from `data`, to the commit's single files."""
    page = report_html.render(data).encode("utf-8")
    return commit.put_bytes(names.REPORT_HTML, page, report_html.CONTENT_TYPE)


def commit_run_page(
    document: dict[str, Any], commit: OutputCommit, storage: Storage, config: Config
) -> str:
    """report.html of the command committing now (run, evaluate), from its own outputs."""
    data = report_data(
        document, dict(commit.written), commit.pending, storage, config.report_thumbnails
    )
    return commit_page(data, commit)


def stored_data(run: str, storage: Storage, thumbnails: bool) -> ReportData:
    """A committed run's page data, located through its run.json."""
    run_json = paths.join(run, names.RUN_JSON)
    if not storage.exists(run_json):
        raise UsageError(f"{run} holds no {names.RUN_JSON}: pass the --output folder of a run")
    return run_data(run, json.loads(storage.read_bytes(run_json)), storage, thumbnails)


def run_data(run: str, document: dict[str, Any], storage: Storage, thumbnails: bool) -> ReportData:
    """The page data of the run under `run` whose manifest is `document` (its `outputs` map
    names the current version of each dataset and single file)."""
    outputs = document.get("outputs") or {}

    def single_file(name: str) -> bytes | None:
        top, _, rest = name.partition("/")
        base = outputs.get(top, paths.join(run, top))
        uri = paths.join(base, rest) if rest else base
        return storage.read_bytes(uri) if storage.exists(uri) else None

    datasets = {name: uri for name, uri in outputs.items() if name in names.DATASETS}
    return report_data(document, datasets, single_file, storage, thumbnails, location=run)


def recommit_after_erasure(
    document: dict[str, Any], commit: OutputCommit, storage: Storage
) -> None:
    """A run's page again, from the datasets an erasure rewrote (its rejected table names files),
    always without thumbnails (they could be photos of erased images). Runs without a page
    get none."""
    if names.REPORT_HTML not in (document.get(names.FILES_SHA256) or {}):
        return
    current = {**document, "outputs": dict(commit.written)}
    commit_page(run_data(commit.output, current, storage, thumbnails=False), commit)
