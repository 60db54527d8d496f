"""Erasure by source path on a local, NOT pseudonymized run (paths are in the outputs)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from support.cli import invoke
from support.gdpr_scan import IMAGE_METADATA, SPARK_FLAGS, holders, local_objects, parquet_rows
from support.images import gps_exif_jpeg
from support.s3 import S3Server

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def local_run(fruits360: Path, s3_server: S3Server, tmp_path_factory) -> tuple[Path, Path, dict]:
    """3 classes x 3 images as <Class>/<file> (no split: nothing is trained) + a GPS photo."""
    root = tmp_path_factory.mktemp("gdpr-local")
    source = root / "in"
    for class_dir in sorted((fruits360 / "Training").iterdir())[:3]:
        (source / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:3]:
            shutil.copyfile(image, source / class_dir.name / image.name)
    gps = source / sorted(p.name for p in source.iterdir())[0] / "photo with gps.jpg"
    gps.write_bytes(gps_exif_jpeg())
    # A custom endpoint makes run.json's audit skip the AWS identity call (no network here).
    env = {"FRUITLENS_S3_ENDPOINT": s3_server.endpoint}
    result = invoke(
        "run",
        "--input",
        str(source),
        "--output",
        str(root / "out"),
        "--weights",
        "seeded:0",
        "--pca-k",
        "2",
        "--no-plots",
        *SPARK_FLAGS,
        env=env,
    )
    assert result.code == 0, result.stderr[-4000:]
    return root / "out", gps, env


def test_paths_are_kept_without_pseudonymize_and_metadata_never(local_run):
    out = local_run[0]
    objects = local_objects(out)
    features = parquet_rows(objects, "features")
    assert any(path.endswith("/photo with gps.jpg") for path in features["path"])
    for marker in IMAGE_METADATA:
        assert holders(objects, marker) == [], marker


def test_erase_by_local_path(local_run, tmp_path: Path):
    run_output, gps, env = local_run
    out = tmp_path / "out"  # a copy to erase from: the module's run stays as it was written
    shutil.copytree(run_output, out)
    before = {name: len(parquet_rows(local_objects(out), name)) for name in ("features", "pca")}
    assert "fingerprint" in json.loads((out / "run.json").read_text())
    result = invoke("erase", "--output", str(out), "--path", str(gps), *SPARK_FLAGS, env=env)
    assert result.code == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["rows_erased"]["features"] == 1 and report["rows_erased"]["pca"] == 1
    assert (
        report["rows_erased"]["resultats_pca.csv"] == 1 and report["rows_erased"]["rejected"] == 0
    )
    assert report["model"] == {"trained_model": False, "retrain_required": False}
    assert gps.exists() and report["sources_deleted"] == 0  # no --delete-source
    objects = local_objects(out)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "features@2",
        "pca@2",
        "rejected",
    ]
    document = json.loads((out / "run.json").read_text())
    assert document["outputs"]["pca"] == "pca@2"
    # The source is still there: an --incremental rerun must not keep the erased outputs as is.
    assert "fingerprint" not in document
    csv = (out / "resultats_pca.csv").read_bytes()
    assert document["files_sha256"]["resultats_pca.csv"] == hashlib.sha256(csv).hexdigest()
    # report.html is re-rendered from the rewritten outputs (it would name rejected files).
    page = (out / "report.html").read_bytes()
    assert document["files_sha256"]["report.html"] == hashlib.sha256(page).hexdigest()
    processed = document["images"]["processed"]
    assert f'data-key="images.processed" data-value="{processed}"'.encode() in page
    for name in ("features", "pca"):
        rows = parquet_rows(objects, f"{name}@2")
        assert len(rows) == before[name] - 1, name
    for needle in ("photo with gps.jpg", report["image_ids"][0]):
        found = holders(objects, needle)
        assert found in ([], ["erasure-log.jsonl"]), (needle, found)
    assert holders(objects, "photo with gps.jpg") == []  # the log holds ids, never paths
    csv_rows = (out / "resultats_pca.csv").read_text().strip().splitlines()
    assert len(csv_rows) - 1 == before["pca"] - 1
