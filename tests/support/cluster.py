"""What the end-to-end runs on the local cluster share: the S3 input, a recorder of the
application's pods and logs, and THE check of a finished run (`check_run`), the same for every
way of submitting.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fruitlens import python_daemon, sparkapp
from fruitlens.outputs.commit import dataset_location
from fruitlens.pipeline import featurize

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "fruitlens"
APP = "fruitlens"
BUCKET = "fruitlens"
INPUT = "raw"
OUTPUT = "runs/kind"
EVENT_LOGS = "spark-events"
KIND_VALUES = REPO / "helm" / "fruitlens" / "values-kind.yaml"
SSE = "AES256"
SUBMISSION_LABEL = "sparkoperator.k8s.io/submission-id"
# A line Spark logged through log4j, in its default layout or its structured one.
SPARK_INFO = re.compile(r"\bINFO\b.*Executor")
# Anything shaped like an AWS key, secret or session token, and the variables that carry them.
CREDENTIAL = re.compile(
    r"AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|aws_secret_access_key|AWS_SECRET_ACCESS_KEY|"
    r"AWS_SESSION_TOKEN|AWS_ACCESS_KEY_ID|fs\.s3a\.(access|secret|session)\.key",
)


def s3_client(endpoint: str) -> Any:
    """boto3 to the node's moto server; unsigned, as the pods' s3a is (no key anywhere)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-3",
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}),
    )


def all_objects(s3: Any, prefix: str = "") -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return keys


def read(s3: Any, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def dataset(s3: Any, document: dict[str, Any], name: str) -> pd.DataFrame:
    """A committed dataset of the run, where its run.json names it (relative to the run, as
    fruitlens's own readers resolve it)."""
    uri = dataset_location(f"s3a://{BUCKET}/{OUTPUT}", document, name)
    prefix = uri.removeprefix(f"s3a://{BUCKET}/").rstrip("/") + "/"
    frames = [
        pd.read_parquet(io.BytesIO(read(s3, key)))
        for key in all_objects(s3, prefix)
        if key.endswith(".parquet")
    ]
    return pd.concat(frames, ignore_index=True).sort_values("image_id").reset_index(drop=True)


def kubectl(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def chart_security() -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod and container security contexts the chart asks for (kind values)."""
    chart = str(REPO / "helm" / "fruitlens")
    rendered = subprocess.run(
        ["helm", "template", APP, chart, "-n", NAMESPACE, "-f", str(KIND_VALUES)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    app = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "SparkApplication")
    return app["spec"]["driver"]["podSecurityContext"], app["spec"]["driver"]["securityContext"]


@dataclass
class Recorder:
    """Every pod of the application as last seen, by UID (a re-submitted application reuses the
    driver's name), and the log of each, followed while it runs (executor pods are deleted when
    the application ends, their logs with them)."""

    core: Any
    pods: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, io.StringIO] = field(default_factory=dict)
    _followers: list[sparkapp.DriverLog] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for follower in self._followers:
            follower.join(timeout=10)

    def role(self, role: str, submission: str | None = None) -> list[Any]:
        """Pods of a role; of one submission of the application when given (the operator
        labels them with it)."""
        return [
            pod
            for pod in self.pods.values()
            if pod.metadata.labels.get("spark-role") == role
            and submission in (None, pod.metadata.labels.get(SUBMISSION_LABEL))
        ]

    def log(self, pod: Any) -> str:
        buffer = self.logs.get(pod.metadata.uid)
        return buffer.getvalue() if buffer else ""

    def _poll(self) -> None:
        selector = f"sparkoperator.k8s.io/app-name={APP}"
        while not self._stop.is_set():
            for pod in self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items:
                uid = pod.metadata.uid
                self.pods[uid] = pod
                if uid not in self.logs and pod.status.phase in {"Running", "Succeeded", "Failed"}:
                    self.logs[uid] = io.StringIO()
                    name = pod.metadata.name
                    follower = sparkapp.DriverLog(self.core, NAMESPACE, name, self.logs[uid])
                    follower.start()
                    self._followers.append(follower)
            self._stop.wait(1.0)


def featurize_tasks(s3: Any, application_id: str) -> list[tuple[str, str]]:
    """(executor id, end reason) of every task that ran the featurizer, from the application's
    event log in S3: the tasks of the featurize jobs' stages that hold the pandas UDF
    (ArrowEvalPython). The listing's shuffle before them (images.read_listed_files repartitions
    it; adaptive execution runs that map stage as a job of its own) is a job of the same
    description whose millisecond tasks featurize nothing."""
    # Spark 4 rolls event logs: eventlog_v2_<app>/events_<n>_<app>, next to an appstatus marker.
    keys = sorted(
        key
        for key in all_objects(s3, f"{EVENT_LOGS}/eventlog_v2_{application_id}/")
        if key.rsplit("/", 1)[-1].startswith("events_")
    )
    assert keys, f"no event log for {application_id} under s3://{BUCKET}/{EVENT_LOGS}/"
    events = [
        json.loads(line) for key in keys for line in read(s3, key).decode().splitlines() if line
    ]
    stages: set[int] = set()
    for event in events:
        properties = event.get("Properties") or {}
        if event["Event"] == "SparkListenerJobStart" and (
            properties.get("spark.job.description") == featurize.FEATURIZE_JOB
        ):
            stages.update(
                stage["Stage ID"]
                for stage in event["Stage Infos"]
                if any(
                    json.loads(rdd.get("Scope") or "{}").get("name") == "ArrowEvalPython"
                    for rdd in stage["RDD Info"]
                )
            )
    assert stages, "no stage of a Spark job described as featurize ran the featurizer"
    return [
        (event["Task Info"]["Executor ID"], event["Task End Reason"]["Reason"])
        for event in events
        if event["Event"] == "SparkListenerTaskEnd" and event["Stage ID"] in stages
    ]


def featurize_executors(s3: Any, application_id: str) -> dict[str, int]:
    """Executor id -> featurize tasks it ran, whatever their end: in the run that loses an
    executor, the victim's featurize task counts as work sent there (it is why it was chosen)."""
    return dict(Counter(executor for executor, _ in featurize_tasks(s3, application_id)))


def featurizing_executors(core: Any, driver: str) -> set[str]:
    """Ids of the executors running a task of the featurize job right now, from the driver's
    Spark UI REST API (through the API server's pod proxy); empty until the UI answers."""
    from kubernetes.client.exceptions import ApiException

    def get(path: str) -> Any:
        response = core.connect_get_namespaced_pod_proxy_with_path(
            f"{driver}:4040", NAMESPACE, f"api/v1/{path}", _preload_content=False
        )
        return json.loads(response.data)

    try:
        applications = get("applications")
        if not applications:
            return set()
        app = applications[0]["id"]
        # The tasks themselves, not the executors' active task counts: the job that starts the
        # Python workers (featurize.StartingWorkers) runs under a name of its own beside the
        # featurize job. A job's first stage is the listing's shuffle (images.read_listed_files
        # repartitions it), whose millisecond tasks featurize nothing; adaptive execution runs
        # it as a job of its own too. On a fast Xeon (2026-12-05) a victim picked among those
        # was done before its pod was deleted.
        stages = [
            stage
            for job in get(f"applications/{app}/jobs")
            if job["status"] == "RUNNING" and job.get("description") == featurize.FEATURIZE_JOB
            for stage in job["stageIds"]
            if stage != min(job["stageIds"])
        ]
        return {
            task["executorId"]
            for stage in stages
            for attempt in get(f"applications/{app}/stages/{stage}")
            if attempt["status"] == "ACTIVE"
            for task in (attempt.get("tasks") or {}).values()
            if task["status"] == "RUNNING"
        }
    except (ApiException, ValueError):  # the UI is not up yet, or just went away
        return set()


def expected_rejections(planted: dict[str, str | None]) -> dict[str, str]:
    return {f"s3a://{BUCKET}/{INPUT}/{path}": reason for path, reason in planted.items() if reason}


def check_run(
    s3: Any, recorder: Recorder, application: dict[str, Any], planted: dict[str, str | None]
) -> dict[str, Any]:
    """Everything a finished run must show, whichever way it was submitted. Returns run.json."""
    status = application["status"]
    assert status["applicationState"]["state"] == sparkapp.COMPLETED, status
    # One driver, at least two executors.
    submission = status["submissionID"]
    drivers = recorder.role("driver", submission)
    executors = recorder.role("executor", submission)
    assert len(drivers) == 1, sorted(recorder.pods)
    assert len(executors) >= 2, sorted(recorder.pods)

    # Featurize tasks ran on (at least) two executors: the work was spread, not run on one.
    per_executor = featurize_executors(s3, status["sparkApplicationId"])
    assert len(per_executor) >= 2, per_executor

    # run.json committed, every listed image accounted for, exactly the planted rejections.
    document = json.loads(read(s3, f"{OUTPUT}/run.json"))
    images = document["images"]
    assert images["listed"] == images["processed"] + images["rejected"], images
    rejected = dataset(s3, document, "rejected")
    reasons = dict(zip(rejected["path"], rejected["reason"], strict=True))
    assert reasons == expected_rejections(planted)
    assert images["listed"] == len(planted)
    # Every worker that featurized ran TensorFlow with oneDNN's kernels (featurize's
    # WORKER_ENVIRONMENT, which the session gives the executors).
    workers = document["precision"]["workers"]
    assert workers and all(worker["onednn"] is True for worker in workers), workers
    # Each executor chose its arithmetic from its own CPU: this machine's, the only node. With
    # `auto` that is bf16 where AUTO_BF16_VERIFIED names its flag and vendor, else fp32.
    asked = document["precision"]["asked"]
    expected = featurize.choose_precision(asked, featurize.this_cpu())
    assert all((worker["precision"], worker["why"]) == expected for worker in workers), workers

    # Every object in the bucket, inputs, outputs and event logs alike, is encrypted at rest.
    unencrypted = [
        key
        for key in all_objects(s3)
        if s3.head_object(Bucket=BUCKET, Key=key).get("ServerSideEncryption") != SSE
    ]
    assert not unencrypted, unencrypted[:10]

    # The pods ran as the chart says: UID/GID 185, non-root, its container security context
    # (the executors' comes from the operator's webhook: without it they would lack it).
    pod_security, container_security = chart_security()
    for pod in drivers + executors:
        spec = pod.to_dict()["spec"]
        context = {k: v for k, v in spec["security_context"].items() if v is not None}
        assert context["run_as_user"] == 185 and context["run_as_non_root"] is True, pod_security
        assert context["run_as_group"] == pod_security["runAsGroup"]
        container = next(c for c in spec["containers"] if c["name"].startswith("spark-kubernetes"))
        actual = container["security_context"]
        assert actual["run_as_user"] == container_security["runAsUser"] == 185
        assert actual["run_as_non_root"] is True
        assert actual["read_only_root_filesystem"] is True
        assert actual["allow_privilege_escalation"] is False
        assert actual["capabilities"]["drop"] == ["ALL"]
        assert actual["seccomp_profile"]["type"] == "RuntimeDefault"

    # Executors' Python daemons import TensorFlow before forking their workers: the featurizing
    # session's spark.executorEnv reached the pods, and no daemon said it could not preload.
    for pod in executors:
        container = next(c for c in pod.spec.containers if c.name.startswith("spark-kubernetes"))
        env = {variable.name: variable.value for variable in container.env or []}
        assert env.get(python_daemon.PRELOAD_TENSORFLOW) == "1", sorted(env)
        assert featurize.WORKER_ENVIRONMENT.items() <= env.items(), sorted(env)
        assert python_daemon.NOT_PRELOADED not in recorder.log(pod)

    # Spark's own lines reach log4j in the executors, which log at Spark's default level (INFO):
    # the AWS SDK bundle among the image's jars carries SLF4J 1.7's API, which silences Spark
    # where it comes first on a class path (docker/Dockerfile, SPARK_CLASSPATH). At least the
    # two that featurized logged their start. (SLF4J's "no-operation" notice may still appear
    # once the SDK starts: its own shaded copy finds no binding, aws/aws-sdk-java-v2#5312, and
    # drops only the SDK's lines.)
    logs = {pod.metadata.name: recorder.log(pod) for pod in drivers + executors}
    logged = [pod.metadata.name for pod in executors if SPARK_INFO.search(logs[pod.metadata.name])]
    assert len(logged) >= 2, (logged, logs.keys())

    # No credential in any pod spec, ConfigMap, the application or any pod's log.
    texts = {f"pod {p.metadata.name}": json.dumps(p.to_dict(), default=str) for p in drivers}
    texts |= {f"pod {p.metadata.name}": json.dumps(p.to_dict(), default=str) for p in executors}
    texts["configmaps"] = kubectl("-n", NAMESPACE, "get", "configmaps", "-o", "yaml")
    texts["sparkapplication"] = json.dumps(application)
    texts |= {f"log {name}": log for name, log in logs.items()}
    assert any(name.startswith("log ") and "featurize" in t for name, t in texts.items())
    for where, text in texts.items():
        found = CREDENTIAL.search(text)
        assert found is None, f"{where}: {found.group(0) if found else ''}"
    return document


def wait_completed(api: Any, core: Any, timeout: float = 1800) -> dict[str, Any]:
    """Follow the application as `fruitlens submit` does, then return its last state."""
    status = sparkapp.wait_for_application(api, core, NAMESPACE, APP, timeout, 5.0, sys.stdout)
    assert status == sparkapp.EXIT_OK, f"application ended with exit status {status}"
    return api.get_namespaced_custom_object(
        sparkapp.GROUP, sparkapp.VERSION, NAMESPACE, sparkapp.PLURAL, APP
    )
