"""Issue 7 against S3 (moto on loopback) behind a fault-injecting proxy
(tests/support/faults/s3proxy.py).

One story, in order: a run through a proxy that answers every 10th request `503 SlowDown`
completes with correct output (retries); a rerun loses S3 mid-write (the proxy stops) and must
fail in bounded time with an error naming S3, leaving the committed run readable; with S3 back,
the next run completes and leaves no trace of the failed one (no unreferenced version, no
pending multipart upload). Plus the defined outcome of an input prefix with no object.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from support.faults.s3proxy import S3FaultProxy
from support.frames import rows
from support.net import free_port
from support.paths import REPO
from support.s3 import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.spark, pytest.mark.slow]

# One task slot: a second Python worker would import TensorFlow and build VGG16 again (about
# 7 CPU-s) for 12 images.
TINY_FLAGS = ["--weights", "seeded:0", "--pca-k", "2", "--no-plots", "--master", "local[1]"]
DATASETS = ("features", "pca", "rejected")
HANG_BOUND_S = 300  # a run that lost S3 must have exited by then (it takes far less)


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server, fruits360: Path) -> str:
    """3 classes x 4 images, flat, plus one empty file (rejected: accounting stays exact)."""
    name = s3_server.make_bucket(f"chaos-{uuid.uuid4().hex[:8]}")
    client = s3_server.client()
    for class_dir in sorted(p for p in (fruits360 / "Training").iterdir() if p.is_dir())[:3]:
        for image in sorted(class_dir.iterdir())[:4]:
            client.upload_file(str(image), name, f"raw/{class_dir.name}/{image.name}")
    client.put_object(Bucket=name, Key="raw/Odd/empty.jpg", Body=b"")
    client.put_object(Bucket=name, Key="hollow/", Body=b"")  # a console-made "folder"
    return name


@pytest.fixture(scope="module")
def proxy(s3_server: S3Server):
    proxy = S3FaultProxy(s3_server.endpoint, free_port()).start()
    yield proxy
    proxy.stop()


def objects(client, bucket: str, prefix: str) -> dict[str, bytes]:
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def run_document(client, bucket: str, run: str) -> dict:
    return json.loads(client.get_object(Bucket=bucket, Key=f"{run}/run.json")["Body"].read())


def dataset(client, bucket: str, uri: str) -> pd.DataFrame:
    prefix = uri.removeprefix(f"s3a://{bucket}/").rstrip("/") + "/"
    frames = [
        pd.read_parquet(io.BytesIO(body))
        for key, body in objects(client, bucket, prefix).items()
        if key.endswith(".parquet")
    ]
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values("image_id").reset_index(drop=True)


def committed_datasets(client, bucket: str, run: str) -> dict[str, pd.DataFrame]:
    outputs = run_document(client, bucket, run)["outputs"]
    # run.json names its datasets relative to the run.
    return {name: dataset(client, bucket, f"{run}/{outputs[name]}") for name in DATASETS}


def top_level(client, bucket: str, run: str) -> set[str]:
    answer = client.list_objects_v2(Bucket=bucket, Prefix=f"{run}/", Delimiter="/")
    names = {p["Prefix"][len(run) + 1 :].rstrip("/") for p in answer.get("CommonPrefixes", [])}
    return names | {item["Key"][len(run) + 1 :] for item in answer.get("Contents", [])}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fruitlens", *args, *TINY_FLAGS]


def env_for(proxy: S3FaultProxy) -> dict[str, str]:
    return {**os.environ, "FRUITLENS_S3_ENDPOINT": proxy.endpoint}


def test_throttling_then_lost_s3_then_recovery(s3_server: S3Server, bucket: str, proxy):
    client = s3_server.client()  # straight to moto, past the proxy
    source, run = f"s3a://{bucket}/raw", "runs/o"
    output = f"s3a://{bucket}/{run}"

    # 1. every 10th request answered 503 SlowDown: retries carry the run to a correct end.
    proxy.fail_every = 10
    result = subprocess.run(
        cli("run", "--input", source, "--output", output),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        env=env_for(proxy),
    )
    proxy.fail_every = 0
    assert result.returncode == 0, result.stderr[-4000:]
    print(f"{proxy.faults} of {proxy.requests} requests answered 503 SlowDown")
    assert proxy.faults >= 5, f"only {proxy.faults} faults injected in {proxy.requests} requests"
    document = run_document(client, bucket, run)
    assert document["images"] == {
        "listed": 13,
        "processed": 12,
        "rejected": 1,
        "rejected_by_reason": {"empty_file": 1},
    }
    first = committed_datasets(client, bucket, run)
    assert len(first["features"]) == 12 and len(first["pca"]) == 12
    assert first["features"]["image_id"].is_unique
    assert all(len(v["values"]) == 512 for v in first["features"]["features"])
    committed = client.get_object(Bucket=bucket, Key=f"{run}/run.json")["Body"].read()

    # 2. S3 goes away once the rerun starts writing its new version: a bounded failure.
    process = subprocess.Popen(
        cli("run", "--input", source, "--output", output, "--overwrite"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env_for(proxy),
    )
    deadline = time.monotonic() + 900
    while not client.list_objects_v2(Bucket=bucket, Prefix=f"{run}/features@2/", MaxKeys=1).get(
        "KeyCount"
    ):
        assert process.poll() is None, "the rerun ended before it wrote anything"
        assert time.monotonic() < deadline, "the rerun never started writing"
        time.sleep(0.1)
    proxy.stop()
    stopped = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=HANG_BOUND_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the run did not give up within {HANG_BOUND_S} s of losing S3")
    assert process.returncode == 1, stderr[-4000:]
    print(f"S3 lost: the run exited {time.monotonic() - stopped:.0f} s later")  # shown by -rP
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("fruitlens run: failed: S3 error"), last_line
    # The committed run is untouched and whole.
    assert client.get_object(Bucket=bucket, Key=f"{run}/run.json")["Body"].read() == committed
    for name, frame in committed_datasets(client, bucket, run).items():
        assert rows(frame) == rows(first[name]), name

    left = [key for key in objects(client, bucket, f"{run}/") if "@2" in key]
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=f"{run}/").get("Uploads", [])
    print(f"the failed run left {len(left)} objects and {len(uploads)} pending uploads")

    # 3. S3 is back: the next run completes and nothing of the failed one remains.
    proxy.start()
    result = subprocess.run(
        cli("run", "--input", source, "--output", output, "--overwrite"),
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
        env=env_for(proxy),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    outputs = run_document(client, bucket, run)["outputs"]
    assert {name: outputs[name] for name in DATASETS} == {name: f"{name}@2" for name in DATASETS}
    assert top_level(client, bucket, run) == {
        "run.json",
        "report.html",
        "resultats_pca.csv",
        *(f"{name}@2" for name in DATASETS),
    }
    keys = objects(client, bucket, f"{run}/").keys()
    assert not [key for key in keys if "__magic" in key or "_temporary" in key]
    assert not client.list_multipart_uploads(Bucket=bucket, Prefix=f"{run}/").get("Uploads")
    # Idempotence: the same rows (ids, paths, labels, features bit for bit, rejections);
    # PCA to 1e-9 (Spark sums partial covariances in task-completion order).
    second = committed_datasets(client, bucket, run)
    for name in ("features", "rejected"):
        assert rows(second[name]) == rows(first[name]), name
    assert rows(second["pca"].drop(columns="pca")) == rows(first["pca"].drop(columns="pca"))
    for left, right in zip(first["pca"]["pca"], second["pca"]["pca"], strict=True):
        assert np.allclose(left["values"], right["values"], rtol=0, atol=1e-9)
