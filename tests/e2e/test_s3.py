"""The job through s3a and boto3 against a real S3 HTTP server on 127.0.0.1 (moto's).

Set FRUITLENS_TEST_S3_BUCKET (plus the usual AWS_* credentials and FRUITLENS_REGION) to run the
same round trip against real AWS S3; it is skipped otherwise.
"""

from __future__ import annotations

import io
import json
import os
import uuid

import pandas as pd
import pytest

from support.cli import run_cli
from support.s3 import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.spark, pytest.mark.slow]


def s3_env(server: S3Server) -> dict[str, str]:
    return {"FRUITLENS_S3_ENDPOINT": server.endpoint}


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server, small_slice) -> str:
    name = s3_server.make_bucket(f"fruits-{uuid.uuid4().hex[:8]}")
    assert s3_server.upload_tree(small_slice, name, "raw/fruits 360") > 0
    return name


@pytest.fixture(scope="module")
def s3_run(s3_server: S3Server, bucket: str) -> str:
    result = run_cli(
        "run",
        "--input",
        f"s3a://{bucket}/raw/fruits 360",
        "--output",
        f"s3a://{bucket}/runs/r1",
        "--weights",
        "seeded:0",
        env=s3_env(s3_server),
    )
    assert result.code == 0, result.stderr[-4000:]
    return "runs/r1"


def read_parquet_prefix(client, bucket: str, prefix: str) -> pd.DataFrame:
    frames = []
    for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"]:
        if item["Key"].endswith(".parquet"):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            frames.append(pd.read_parquet(io.BytesIO(body)))
    return pd.concat(frames, ignore_index=True)


def test_outputs_come_back_through_boto3(
    s3_server: S3Server, bucket: str, s3_run: str, small_slice
):
    client = s3_server.client()
    document = json.loads(client.get_object(Bucket=bucket, Key=f"{s3_run}/run.json")["Body"].read())
    expected = sum(1 for p in small_slice.rglob("*") if p.is_file())
    assert document["images"] == {
        "listed": expected,
        "processed": expected,
        "rejected": 0,
        "rejected_by_reason": {},
    }
    features = read_parquet_prefix(client, bucket, f"{s3_run}/features")
    assert len(features) == expected
    assert all(path.startswith(f"s3a://{bucket}/raw/fruits 360/") for path in features["path"])
    pca = read_parquet_prefix(client, bucket, f"{s3_run}/pca")
    assert len(pca) == expected
    csv_text = client.get_object(Bucket=bucket, Key=f"{s3_run}/resultats_pca.csv")["Body"].read()
    assert len(csv_text.decode().strip().splitlines()) == expected + 1
    keys = {
        item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix=s3_run)["Contents"]
    }
    assert f"{s3_run}/plots/pca_scatter.png" in keys and f"{s3_run}/model.json" in keys


def test_magic_committer_wrote_the_datasets(s3_server: S3Server, bucket: str, s3_run: str):
    """A JSON _SUCCESS (not an empty one) is the S3A committers' signature."""
    client = s3_server.client()
    for dataset in ("features", "pca", "rejected"):
        body = client.get_object(Bucket=bucket, Key=f"{s3_run}/{dataset}/_SUCCESS")["Body"].read()
        manifest = json.loads(body)
        assert manifest["committer"] == "magic", dataset


def test_every_written_object_is_encrypted_at_rest(s3_server: S3Server, bucket: str, s3_run: str):
    client = s3_server.client()
    objects = client.list_objects_v2(Bucket=bucket, Prefix=s3_run)["Contents"]
    assert len(objects) > 10
    for item in objects:
        head = client.head_object(Bucket=bucket, Key=item["Key"])
        assert head.get("ServerSideEncryption") == "AES256", item["Key"]


def test_non_empty_output_prefix_is_refused(s3_server: S3Server, bucket: str, s3_run: str):
    result = run_cli(
        "run",
        "--input",
        f"s3a://{bucket}/raw/fruits 360",
        "--output",
        f"s3a://{bucket}/{s3_run}",
        "--weights",
        "seeded:0",
        env=s3_env(s3_server),
    )
    assert result.code == 2 and "--overwrite" in result.stderr and "log4j" not in result.stderr


def test_weights_file_from_s3a(
    s3_server: S3Server, bucket: str, seeded_weights_file, small_slice, tmp_path
):
    client = s3_server.client()
    client.upload_file(str(seeded_weights_file), bucket, "weights/vgg16.weights.h5")
    result = run_cli(
        "run",
        "--input",
        f"s3a://{bucket}/raw/fruits 360/Test",
        "--output",
        str(tmp_path / "out"),
        "--weights",
        f"s3a://{bucket}/weights/vgg16.weights.h5",
        "--no-plots",
        "--pca-k",
        "3",
        env=s3_env(s3_server),
    )
    assert result.code == 0, result.stderr[-3000:]
    document = json.loads((tmp_path / "out" / "run.json").read_text())
    from fruitlens import checksum

    assert document["model"]["weights_sha256"] == checksum.sha256(seeded_weights_file)


@pytest.mark.skipif(
    not os.environ.get("FRUITLENS_TEST_S3_BUCKET"),
    reason="set FRUITLENS_TEST_S3_BUCKET and AWS credentials to run against real AWS S3",
)
def test_round_trip_on_real_aws(small_slice, tmp_path):
    import boto3

    bucket = os.environ["FRUITLENS_TEST_S3_BUCKET"]
    prefix = f"fruitlens-test/{uuid.uuid4().hex}"
    client = boto3.client("s3")
    for path in small_slice.rglob("*"):
        if path.is_file():
            client.upload_file(
                str(path), bucket, f"{prefix}/in/{path.relative_to(small_slice).as_posix()}"
            )
    result = run_cli(
        "run",
        "--input",
        f"s3a://{bucket}/{prefix}/in",
        "--output",
        f"s3a://{bucket}/{prefix}/out",
        "--weights",
        "seeded:0",
    )
    assert result.code == 0, result.stderr[-3000:]
    head = client.head_object(Bucket=bucket, Key=f"{prefix}/out/run.json")
    assert head.get("ServerSideEncryption") in {"AES256", "aws:kms"}
