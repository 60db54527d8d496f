"""`make e2e`: the fruitlens SparkApplication on a real single-node cluster (hack/cluster-up.sh),
run by the real Spark Operator v2.5.2 (webhook on), from the locally built image, against the
node's S3 server. Three ways of submitting, each checked by the same `check_run`, then an
executor killed during featurization.

Opt-in: `make e2e` brings the cluster up and sets FRUITLENS_E2E=1 (several minutes a run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fruitlens import sparkapp
from fruitlens.outputs.commit import WRITER_LEFTOVERS
from support.cluster import (
    APP,
    BUCKET,
    EVENT_LOGS,
    INPUT,
    KIND_VALUES,
    NAMESPACE,
    OUTPUT,
    REPO,
    SSE,
    Recorder,
    all_objects,
    check_run,
    dataset,
    featurize_tasks,
    featurizing_executors,
    kubectl,
    s3_client,
    wait_completed,
)
from support.images import bad_inputs
from support.paths import dataset_root

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("FRUITLENS_E2E") != "1",
        reason="needs the local cluster: `make e2e` brings it up and runs these",
    ),
]

CLASSES, TRAINING, TEST = 4, 6, 3
# The label the Spark driver gives each executor pod: its executor id.
EXECUTOR_ID = "spark-exec-id"


@pytest.fixture(scope="module")
def kube() -> tuple[Any, Any]:
    from kubernetes import client, config

    config.load_kube_config()
    return client.CustomObjectsApi(), client.CoreV1Api()


@pytest.fixture(scope="module")
def s3() -> Any:
    return s3_client(os.environ["FRUITLENS_E2E_S3"])


@pytest.fixture(scope="module")
def planted(s3: Any) -> dict[str, str | None]:
    """A labelled slice of the shared Fruits-360 subset plus the planted bad files, uploaded
    SSE-encrypted: relative path -> expected rejection reason (None: must be processed)."""
    root = dataset_root()
    if not (root / "Training").is_dir():
        pytest.fail(f"Fruits-360 subset not found at {root} (FRUITLENS_DATASET)")
    if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"}
        )
    expected: dict[str, str | None] = {}
    for split, count in (("Training", TRAINING), ("Test", TEST)):
        for folder in sorted(p for p in (root / split).iterdir() if p.is_dir())[:CLASSES]:
            for image in sorted(folder.iterdir())[:count]:
                expected[f"{split}/{folder.name}/{image.name}"] = None
                s3.upload_file(
                    str(image),
                    BUCKET,
                    f"{INPUT}/{split}/{folder.name}/{image.name}",
                    ExtraArgs={"ServerSideEncryption": SSE},
                )
    for path, (data, reason) in bad_inputs().items():
        expected[path] = reason
        s3.put_object(Bucket=BUCKET, Key=f"{INPUT}/{path}", Body=data, ServerSideEncryption=SSE)
    # Spark's event log writer wants its directory to exist; on S3 that is a marker object.
    s3.put_object(Bucket=BUCKET, Key=f"{EVENT_LOGS}/", Body=b"", ServerSideEncryption=SSE)
    return expected


@pytest.fixture
def recorder(kube: tuple[Any, Any]) -> Iterator[Recorder]:
    with Recorder(kube[1]) as rec:
        yield rec


def run(*command: str) -> None:
    subprocess.run(list(command), check=True)


SUBMIT = (sys.executable, "-m", "fruitlens", "submit", "-f", str(KIND_VALUES))
# Features of a run without fault, to compare the faulted run's with.
NO_FAULT: dict[str, Any] = {}


def application(api: Any) -> dict[str, Any]:
    return api.get_namespaced_custom_object(
        sparkapp.GROUP, sparkapp.VERSION, NAMESPACE, sparkapp.PLURAL, APP
    )


def test_a_helm_install(kube, s3, planted, recorder: Recorder) -> None:
    api, core = kube
    chart = str(REPO / "helm" / "fruitlens")
    run("helm", "install", APP, chart, "-n", NAMESPACE, "-f", str(KIND_VALUES))
    check_run(s3, recorder, wait_completed(api, core), planted)
    run("helm", "uninstall", APP, "-n", NAMESPACE, "--wait")
    sparkapp.wait_deleted(api, NAMESPACE, APP, timeout=180)


def test_b_kubectl_apply_kustomize(kube, s3, planted, recorder: Recorder) -> None:
    api, core = kube
    run("kubectl", "apply", "-k", str(REPO / "k8s" / "overlays" / "kind"))
    check_run(s3, recorder, wait_completed(api, core), planted)
    # The service account, Role and ConfigMap stay: `fruitlens submit` relies on them.
    kubectl("-n", NAMESPACE, "delete", "sparkapplication", APP, "--wait")
    sparkapp.wait_deleted(api, NAMESPACE, APP, timeout=180)


def test_c_fruitlens_submit(kube, s3, planted, recorder: Recorder) -> None:
    api, _ = kube
    proc = subprocess.run(
        [*SUBMIT, "-n", NAMESPACE, "--timeout", "1800", "--poll-interval", "2"],
        capture_output=True,
        text=True,
        check=False,
    )
    print(proc.stdout[-20000:], proc.stderr[-5000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    # It followed the state and streamed the driver's log while it ran.
    assert f"SparkApplication {NAMESPACE}/{APP}: COMPLETED" in proc.stdout
    assert "stage featurize: done" in proc.stdout
    document = check_run(s3, recorder, application(api), planted)
    NO_FAULT["features"] = dataset(s3, document, "features")


def test_d_executor_deleted_during_featurization(kube, s3, planted, recorder: Recorder) -> None:
    """The application survives losing an executor mid-featurization: the lost tasks run again
    elsewhere, the features are those of the run without fault, the output commits once."""
    api, core = kube
    if "features" not in NO_FAULT:
        pytest.skip("needs the features of test_c's run without fault")
    run(*SUBMIT, "-n", NAMESPACE, "--replace", "--no-wait")
    # The executor is deleted while it runs a featurize task, not merely once featurize began.
    deleted = None
    deadline = time.monotonic() + 1800
    while deleted is None and time.monotonic() < deadline:
        submission = (application(api).get("status") or {}).get("submissionID")
        running = [
            pod
            for pod in recorder.role("driver", submission) + recorder.role("executor", submission)
            if submission and pod.status.phase == "Running"
        ]
        drivers = [pod for pod in running if pod.metadata.labels["spark-role"] == "driver"]
        busy = featurizing_executors(core, drivers[0].metadata.name) if drivers else set()
        victims = [pod for pod in running if pod.metadata.labels.get(EXECUTOR_ID) in busy]
        if victims:
            deleted = victims[0].metadata.labels[EXECUTOR_ID]
            core.delete_namespaced_pod(victims[0].metadata.name, NAMESPACE, grace_period_seconds=0)
            print(f"deleted executor {deleted} ({victims[0].metadata.name}) during featurize")
        time.sleep(0.5)
    assert deleted, "no executor ever ran a featurize task"
    finished = wait_completed(api, core)
    document = check_run(s3, recorder, finished, planted)
    # A replacement executor was created, and the driver was never restarted.
    executors = recorder.role("executor", finished["status"]["submissionID"])
    assert len(executors) >= 3, [pod.metadata.name for pod in executors]
    # The event log shows the fault hit featurization: tasks of the deleted executor were lost.
    ends = featurize_tasks(s3, finished["status"]["sparkApplicationId"])
    lost = {executor for executor, reason in ends if reason == "ExecutorLostFailure"}
    assert lost == {deleted}, ends
    assert finished["status"].get("executionAttempts", 1) == 1
    assert finished["status"].get("submissionAttempts", 1) == 1
    # Same features as without the fault, row for row.
    features = dataset(s3, document, "features")
    expected = NO_FAULT["features"]
    assert list(features["image_id"]) == list(expected["image_id"])
    for got, want in zip(features["features"], expected["features"], strict=True):
        assert list(got["values"]) == list(want["values"])
    # Committed exactly once: one version of each dataset, nothing half-written left behind.
    keys = all_objects(s3, f"{OUTPUT}/")
    assert not [key for key in keys if any(part in key for part in WRITER_LEFTOVERS)]
    assert not s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"{OUTPUT}/").get("Uploads")
    # Each dataset folder of the output exists in one version only, the one run.json names
    # (the plain name of a first run or a later `name@N`).
    folders: dict[str, set[str]] = {}
    for key in keys:
        relative = key[len(OUTPUT) + 1 :]
        if "/" in relative:
            top = relative.split("/", 1)[0]
            folders.setdefault(top.split("@", 1)[0], set()).add(top)
    assert {"features", "rejected"} <= folders.keys(), folders
    for name, stored in document["outputs"].items():
        if name in folders:
            assert folders[name] == {stored.rstrip("/")}, (name, folders[name])
