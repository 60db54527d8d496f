"""fruitlens as a process against a real S3 HTTP server on 127.0.0.1 (moto's), through s3a
(Java) and boto3: ONE `run`, its outputs read back, GDPR by construction, then erasure.

The run reads its images and its weights file over s3a and is pseudonymized, with a GPS-tagged
photo, a non-image and distinctive fake credentials: its outputs come back through boto3, its
datasets carry the magic committer's manifest, and every object is searched byte for byte. Then
`erase` removes three images from a copy of it, and a second identical `erase` must change
nothing: the run's own outputs stay as written, whatever order the tests run in.

Set FRUITLENS_TEST_S3_BUCKET (plus the usual AWS_* credentials and FRUITLENS_REGION) to run a
round trip against real AWS S3; it is skipped otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from fruitlens import checksum, weights
from support.cli import CliResult, run_cli
from support.gdpr_scan import (
    FAKE_CREDENTIALS,
    IMAGE_METADATA,
    SPARK_FLAGS,
    OutputObject,
    holders,
    parquet_rows,
    s3_objects,
)
from support.images import gps_exif_jpeg
from support.paths import copy_slice
from support.s3 import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.spark, pytest.mark.slow]

RUN_PREFIX = "runs/r1"
ERASED_PREFIX = "runs/r1-erased"
WEIGHTS_KEY = "weights/vgg16.weights.h5"
NOT_AN_IMAGE = b"a shopping list, not a photo\n"


@dataclass
class S3Run:
    bucket: str
    source: Path
    gps_class: str
    result: CliResult
    server: S3Server
    prefix: str = RUN_PREFIX

    @property
    def output(self) -> str:
        return f"s3a://{self.bucket}/{self.prefix}"

    def objects(self) -> list[OutputObject]:
        return s3_objects(self.server.client(), self.bucket, self.prefix)

    def run_json(self) -> dict:
        body = self.server.client().get_object(Bucket=self.bucket, Key=f"{self.prefix}/run.json")
        return json.loads(body["Body"].read())

    def dataset(self, name: str):
        # run.json names its datasets relative to the run.
        prefix = f"{self.prefix}/{self.run_json()['outputs'][name]}"
        return parquet_rows(self.objects(), prefix)

    def copied_to(self, prefix: str) -> S3Run:
        """The same run under `prefix`, copied object by object (encrypted as the job does)."""
        client = self.server.client()
        for obj in self.objects():
            client.copy_object(
                Bucket=self.bucket,
                Key=prefix + obj.key.removeprefix(self.prefix),
                CopySource={"Bucket": self.bucket, "Key": obj.key},
                ServerSideEncryption="AES256",
            )
        return replace(self, prefix=prefix)

    def env(self) -> dict[str, str]:
        return {"FRUITLENS_S3_ENDPOINT": self.server.endpoint, **FAKE_CREDENTIALS}

    def source_files(self) -> int:
        return sum(1 for path in self.source.rglob("*") if path.is_file())


@pytest.fixture(scope="module")
def s3_run(
    s3_server: S3Server, fruits360: Path, seeded_weights_file: Path, tmp_path_factory
) -> Iterator[S3Run]:
    source = copy_slice(
        fruits360, tmp_path_factory.mktemp("gdpr-in"), {"Training": 4, "Test": 2}, 3
    )
    gps_class = sorted(p.name for p in (source / "Training").iterdir())[0]
    (source / "Training" / gps_class / "gps.jpg").write_bytes(gps_exif_jpeg())
    (source / "Training" / gps_class / "notes.jpg").write_bytes(NOT_AN_IMAGE)
    bucket = s3_server.make_bucket(f"gdpr-{uuid.uuid4().hex[:8]}")
    s3_server.upload_tree(source, bucket, "raw")
    s3_server.client().upload_file(str(seeded_weights_file), bucket, WEIGHTS_KEY)
    weights_uri = f"s3a://{bucket}/{WEIGHTS_KEY}"
    try:
        result = run_cli(
            "run",
            "--input",
            f"s3a://{bucket}/raw",
            "--output",
            f"s3a://{bucket}/{RUN_PREFIX}",
            "--weights",
            weights_uri,
            "--pca-k",
            "2",
            "--cv-folds",
            "2",
            "--pseudonymize",
            *SPARK_FLAGS,
            env={"FRUITLENS_S3_ENDPOINT": s3_server.endpoint, **FAKE_CREDENTIALS},
        )
        assert result.code == 0, result.stderr[-4000:]
        assert weights.remote_copy(weights_uri).is_file()  # the driver's copy, in the cache
        yield S3Run(bucket, source, gps_class, result, s3_server)
    finally:
        # In the developer's cache (FRUITLENS_CACHE), under this bucket's name, which no later
        # run names again: 57 MB a test session left there for good otherwise.
        shutil.rmtree(weights.remote_copy(weights_uri).parent, ignore_errors=True)


def assert_no_credentials(result: CliResult, objects: list[OutputObject]) -> None:
    for secret in FAKE_CREDENTIALS.values():
        assert secret not in result.stdout and secret not in result.stderr, secret
        assert holders(objects, secret) == [], secret


def test_run_logs_and_outputs_hold_no_credential(s3_run: S3Run):
    objects = s3_run.objects()
    assert len(objects) > 10
    assert_no_credentials(s3_run.result, objects)


def test_image_metadata_never_reaches_the_outputs(s3_run: S3Run):
    gps_id = hashlib.sha256(gps_exif_jpeg()).hexdigest()
    assert gps_id in set(s3_run.dataset("features")["image_id"])  # it was processed
    for marker in IMAGE_METADATA:
        assert holders(s3_run.objects(), marker) == [], marker


def test_pseudonymized_outputs_name_no_image_path(s3_run: S3Run):
    objects = s3_run.objects()
    names = {p.name for p in s3_run.source.rglob("*") if p.is_file()}
    assert {"gps.jpg", "notes.jpg"} <= names and len(names) > 10
    for name in names:
        assert holders(objects, name) == [], name
    for dataset in ("features", "pca", "rejected", "predictions"):
        rows = s3_run.dataset(dataset)
        assert len(rows) and (rows["path"] == rows["image_id"]).all(), dataset
    csv_text = next(o for o in objects if o.key.endswith("resultats_pca.csv")).text
    assert "/raw/" not in csv_text and ".jpg" not in csv_text
    assert s3_run.run_json()["audit"]["pseudonymized"] is True


def test_every_object_of_the_run_is_encrypted_at_rest(s3_run: S3Run):
    client = s3_run.server.client()
    keys = [obj.key for obj in s3_run.objects()]
    assert any("/training_image_ids/" in key for key in keys)
    for key in keys:
        head = client.head_object(Bucket=s3_run.bucket, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key


def test_outputs_come_back_through_boto3(s3_run: S3Run):
    document = s3_run.run_json()
    listed = s3_run.source_files()
    processed = listed - 1  # notes.jpg is not an image
    assert document["images"]["listed"] == listed
    assert document["images"]["processed"] == processed
    assert sum(document["images"]["rejected_by_reason"].values()) == 1
    assert len(s3_run.dataset("features")) == len(s3_run.dataset("pca")) == processed
    tests = sum(1 for path in (s3_run.source / "Test").rglob("*") if path.is_file())
    assert len(s3_run.dataset("predictions")) == tests
    keys = {obj.key.removeprefix(f"{RUN_PREFIX}/") for obj in s3_run.objects()}
    assert {"plots/pca_scatter.png", "model.json", "report.html"} <= keys
    csv_text = next(o for o in s3_run.objects() if o.key.endswith("resultats_pca.csv")).text
    assert len(csv_text.strip().splitlines()) == 1 + processed  # the header, a row per image


def test_the_weights_file_came_from_s3(s3_run: S3Run, seeded_weights_file: Path):
    model = s3_run.run_json()["model"]
    assert model["weights_sha256"] == checksum.sha256(seeded_weights_file)


def test_the_workers_ran_tensorflow_s_onednn_kernels(s3_run: S3Run):
    # Whatever the CPU: the session's spark.executorEnv reached the local workers, and their
    # TensorFlow says it runs oneDNN (left to itself, it does not on an AVX2-only CPU).
    workers = s3_run.run_json()["precision"]["workers"]
    assert workers and all(worker["onednn"] is True for worker in workers), workers


def test_magic_committer_wrote_the_datasets(s3_run: S3Run):
    """A JSON _SUCCESS (not an empty one) is the S3A committers' signature."""
    client = s3_run.server.client()
    outputs = s3_run.run_json()["outputs"]
    for dataset in ("features", "pca", "rejected"):
        key = f"{RUN_PREFIX}/{outputs[dataset]}/_SUCCESS"
        manifest = json.loads(client.get_object(Bucket=s3_run.bucket, Key=key)["Body"].read())
        assert manifest["committer"] == "magic", dataset


def test_non_empty_output_prefix_is_refused(s3_run: S3Run):
    result = run_cli(
        "run",
        "--input",
        f"s3a://{s3_run.bucket}/raw",
        "--output",
        s3_run.output,
        "--weights",
        "seeded:0",
        env=s3_run.env(),
    )
    assert result.code == 2 and "--overwrite" in result.stderr and "log4j" not in result.stderr


# --- erasure -----------------------------------------------------------------------------------
@dataclass
class Erasure:
    run: S3Run  # the copy erased from
    ids: set[str]
    test_id: str
    before: dict[str, int]
    report: dict
    result: CliResult
    source_keys: list[str]


def erase_args(s3_run: S3Run, test_id: str) -> list[str]:
    return [
        "erase",
        "--output",
        s3_run.output,
        "--path",
        f"s3a://{s3_run.bucket}/raw/Training/{s3_run.gps_class}/gps.jpg",
        "--image-id",
        test_id,
        "--image-id",
        hashlib.sha256(NOT_AN_IMAGE).hexdigest(),
        "--delete-source",
        *SPARK_FLAGS,
    ]


@pytest.fixture(scope="module")
def erasure(s3_run: S3Run) -> Erasure:
    erased = s3_run.copied_to(ERASED_PREFIX)
    predictions = erased.dataset("predictions")
    test_id = sorted(predictions["image_id"])[0]  # a Test image: in predictions, not training
    ids = {
        hashlib.sha256(gps_exif_jpeg()).hexdigest(),
        test_id,
        hashlib.sha256(NOT_AN_IMAGE).hexdigest(),
    }
    before = {name: len(erased.dataset(name)) for name in ("features", "pca", "rejected")}
    before["predictions"] = len(predictions)
    before["processed"] = erased.run_json()["images"]["processed"]
    client = erased.server.client()
    raw = client.list_objects_v2(Bucket=erased.bucket, Prefix="raw/")["Contents"]
    source_keys = [
        item["Key"]
        for item in raw
        if hashlib.sha256(
            client.get_object(Bucket=erased.bucket, Key=item["Key"])["Body"].read()
        ).hexdigest()
        in ids
    ]
    assert len(source_keys) == 3
    result = run_cli(*erase_args(erased, test_id), env=erased.env())
    assert result.code == 0, result.stderr[-4000:]
    return Erasure(erased, ids, test_id, before, json.loads(result.stdout), result, source_keys)


def test_erase_removes_exactly_the_erased_rows(erasure: Erasure):
    erased = erasure.run
    rows = erasure.report["rows_erased"]
    assert rows == {
        "features": 2,
        "pca": 2,
        "rejected": 1,
        "predictions": 1,
        "resultats_pca.csv": 2,
    }
    assert set(erasure.report["image_ids"]) == erasure.ids
    for name in ("features", "pca", "rejected", "predictions"):
        after = erased.dataset(name)
        assert len(after) == erasure.before[name] - rows[name], name
        assert not set(after.get("image_id", [])) & erasure.ids, name
    document = erased.run_json()
    assert document["outputs"]["features"] == "features@2"
    assert document["images"]["processed"] == erasure.before["processed"] - 2
    assert document["images"]["rejected_by_reason"] == {}
    keys = [obj.key for obj in erased.objects()]
    assert not any(key.startswith(f"{erased.prefix}/features/") for key in keys)  # old version gone
    csv_lines = next(o for o in erased.objects() if o.key.endswith(".csv")).text.splitlines()
    assert len(csv_lines) - 1 == erasure.before["pca"] - 2


def test_erased_ids_remain_only_in_the_log_and_the_models_training_list(erasure: Erasure):
    erased = erasure.run
    objects = erased.objects()
    for image_id in erasure.ids:
        for key in holders(objects, image_id):
            assert key.endswith("erasure-log.jsonl") or "/training_image_ids/" in key, key
    model = erasure.report["model"]
    assert model["retrain_required"] is True and model["exact"] is True
    assert model["erased_images_in_training"] == 1  # gps.jpg was a Training image


def test_erase_deletes_the_sources_and_logs_who_without_paths(erasure: Erasure):
    erased = erasure.run
    client = erased.server.client()
    left = {
        item["Key"]
        for item in client.list_objects_v2(Bucket=erased.bucket, Prefix="raw/")["Contents"]
    }
    assert erasure.report["sources_deleted"] == 3
    assert not left & set(erasure.source_keys) and len(left) > 10
    log = client.get_object(Bucket=erased.bucket, Key=f"{erased.prefix}/erasure-log.jsonl")
    entry = json.loads(log["Body"].read().decode().splitlines()[0])
    assert entry["who"]["os_user"] and set(entry["image_ids"]) == erasure.ids
    assert "raw/" not in json.dumps(entry) and "gps.jpg" not in json.dumps(entry)
    assert_no_credentials(erasure.result, erased.objects())
    for obj in erased.objects():
        head = client.head_object(Bucket=erased.bucket, Key=obj.key)
        assert head.get("ServerSideEncryption") == "AES256", obj.key


def test_erasing_the_same_images_again_is_a_no_op(erasure: Erasure):
    erased = erasure.run
    client = erased.server.client()

    def state() -> dict[str, str]:
        listing = client.list_objects_v2(Bucket=erased.bucket)["Contents"]
        return {item["Key"]: item["ETag"] for item in listing if "erasure-log" not in item["Key"]}

    before = state()
    result = run_cli(*erase_args(erased, erasure.test_id), env=erased.env())
    assert result.code == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert set(report["rows_erased"].values()) == {0} and report["no_op"] is True
    assert report["sources_deleted"] == 0
    assert state() == before
    log = client.get_object(Bucket=erased.bucket, Key=f"{erased.prefix}/erasure-log.jsonl")
    assert len(log["Body"].read().decode().splitlines()) == 2


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
