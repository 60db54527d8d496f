"""Writing results: Parquet datasets through Spark, single files (CSV, JSON, PNG) via Storage."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

from fruitlens import paths
from fruitlens.storage import Storage

# Output layout under --output; the README documents each entry.
FEATURES = "features"
PCA = "pca"
REJECTED = "rejected"
PREDICTIONS = "predictions"
PLOTS = "plots"
CLIENT_CSV = "resultats_pca.csv"
RUN_JSON = "run.json"
EVALUATION_JSON = "evaluation.json"


def write_parquet(frame: DataFrame, uri: str) -> None:
    # Overwrite is safe here: the CLI refused a non-empty output unless --overwrite was given.
    frame.write.mode("overwrite").parquet(uri)


def write_csv(frame: DataFrame, uri: str, storage: Storage) -> int:
    """One CSV file for the client, streamed partition by partition (memory stays flat)."""
    rows = 0
    with tempfile.TemporaryDirectory(prefix="fruitlens-csv-") as folder:
        local = Path(folder) / "out.csv"
        with local.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(frame.columns)
            for row in frame.toLocalIterator(prefetchPartitions=True):
                writer.writerow(_csv_value(value) for value in row)
                rows += 1
        storage.upload(local, uri, "text/csv; charset=utf-8")
    return rows


def _csv_value(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


def write_json(document: dict[str, Any], uri: str, storage: Storage) -> None:
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    storage.write_bytes(uri, text.encode("utf-8"), "application/json")


def write_png(data: bytes, output: str, name: str, storage: Storage) -> str:
    uri = paths.join(output, PLOTS, name)
    storage.write_bytes(uri, data, "image/png")
    return uri
