"""Helpers for the GDPR tests: read every output object, raw and decoded, to search it."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from support import jvm

# Shaped like an access key id so the redaction filter must catch it; assembled here so no
# key-shaped literal sits in the repository. It grants nothing anywhere.
FAKE_KEY = "AKIA" + "FRUITLENSTEST001"
FAKE_SECRET = "fruitlens-secret-must-not-leak"
FAKE_TOKEN = "fruitlens-token-must-not-leak"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": FAKE_KEY,
    "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
    "AWS_SESSION_TOKEN": FAKE_TOKEN,
}
IMAGE_METADATA = (b"Jeanne Grower", b"SERIAL-4242-XYZ", b"Exif\x00\x00")
SPARK_FLAGS = ("--master", "local[1]", "--spark-conf", "spark.ui.enabled=false", *jvm.DRIVER_FLAGS)


@dataclass
class OutputObject:
    key: str
    raw: bytes

    @property
    def text(self) -> str:
        """Decoded content: Parquet cells (compression would hide them from a byte search)."""
        if self.key.endswith(".parquet"):
            frame = pd.read_parquet(io.BytesIO(self.raw))
            cells = [str(value) for value in frame.to_numpy().ravel()]
            return "\n".join([*map(str, frame.columns), *cells])
        return self.raw.decode("utf-8", "replace")

    def holds(self, needle: str | bytes) -> bool:
        as_bytes = needle.encode() if isinstance(needle, str) else needle
        as_text = needle if isinstance(needle, str) else needle.decode("latin-1")
        return as_bytes in self.raw or as_text in self.text


def s3_objects(client, bucket: str, prefix: str) -> list[OutputObject]:
    found = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix.rstrip("/") + "/"):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found.append(OutputObject(item["Key"], body))
    return found


def local_objects(root: Path) -> list[OutputObject]:
    return [
        OutputObject(path.relative_to(root).as_posix(), path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    ]


def holders(objects: Iterable[OutputObject], needle: str | bytes) -> list[str]:
    return [obj.key for obj in objects if obj.holds(needle)]


def parquet_rows(objects: Iterable[OutputObject], dataset_prefix: str) -> pd.DataFrame:
    frames = [
        pd.read_parquet(io.BytesIO(obj.raw))
        for obj in objects
        if obj.key.startswith(dataset_prefix.rstrip("/") + "/") and obj.key.endswith(".parquet")
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
