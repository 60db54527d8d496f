"""Against a real Kubernetes API server (etcd + kube-apiserver from `make k8s-tools`): server-side
dry run of every object the project ships, Pod Security admission of the Spark pods, and
`fruitlens submit` end to end with this test playing the Spark Operator (it writes the status)."""

from __future__ import annotations

import argparse
import copy
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from fruitlens import sparkapp
from fruitlens.commands import submit
from support.deploy.apiserver import ApiServer
from support.deploy.harness import (
    K8S,
    VARIANTS,
    all_renders,
    crd_path,
    one,
    render_kustomize,
    run,
    tool,
)
from support.deploy.pods import spark_pods

pytestmark = pytest.mark.slow

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    etcd, apiserver = tool("etcd"), tool("kube-apiserver")
    workdir = tmp_path_factory.mktemp("apiserver")
    with ApiServer(workdir, etcd, apiserver) as srv:
        kubectl = Kubectl(srv.kubeconfig)
        # `create`, not `apply`: the CRD is larger than the last-applied annotation allows.
        kubectl.ok("create", "-f", str(crd_path()))
        # Polled rather than `kubectl wait`, which errors out while the CRD has no conditions yet.
        deadline = time.monotonic() + 60
        while not _established(kubectl, "sparkapplications.sparkoperator.k8s.io"):
            assert time.monotonic() < deadline, "the SparkApplication CRD never became established"
            time.sleep(0.2)
        # The namespace (Pod Security "restricted") and everything but the application itself,
        # as `kubectl apply -k k8s/overlays/kind` would create them.
        objects = [o for o in render_kustomize("kind") if o["kind"] != "SparkApplication"]
        kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
        yield srv


def _established(kubectl: Kubectl, crd: str) -> bool:
    status = json.loads(kubectl.ok("get", "crd", crd, "-o", "json")).get("status") or {}
    return any(
        c["type"] == "Established" and c["status"] == "True" for c in status.get("conditions") or []
    )


class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.binary = tool("kubectl")

    def __call__(self, *args: str, stdin: str | None = None) -> Any:
        return run([self.binary, f"--kubeconfig={self.kubeconfig}", *args], input=stdin)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        proc = self(*args, stdin=stdin)
        assert proc.returncode == 0, f"kubectl {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
        return proc.stdout


@pytest.fixture(scope="module")
def kubectl(server: ApiServer) -> Kubectl:
    return Kubectl(server.kubeconfig)


@pytest.fixture(scope="module")
def api(server: ApiServer) -> tuple[Any, Any]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(server.kubeconfig), client_configuration=cfg)
    api_client = client.ApiClient(cfg)
    return client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)


def test_server_version(kubectl: Kubectl) -> None:
    version = yaml.safe_load(kubectl.ok("version", "-o", "yaml"))
    assert version["serverVersion"]["minor"] == "35"


@pytest.mark.parametrize(
    "origin", [f"{how}:{v}" for how in ("helm", "kustomize") for v in VARIANTS]
)
def test_server_side_dry_run(kubectl: Kubectl, origin: str) -> None:
    objects = dict(all_renders())[origin]
    out = kubectl.ok(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        stdin=yaml.safe_dump_all(objects),
    )
    assert out.count("(server dry run)") == len(objects), out


def test_strict_validation_rejects_unknown_application_field(kubectl: Kubectl) -> None:
    app = copy.deepcopy(one(render_kustomize("kind"), "SparkApplication"))
    app["spec"]["executor"]["instanses"] = 3
    proc = kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=yaml.safe_dump(app)
    )
    assert proc.returncode != 0
    assert "instanses" in proc.stderr


@pytest.mark.parametrize("variant", ["kind", "eks"])
def test_spark_pods_pass_restricted_pod_security(kubectl: Kubectl, variant: str) -> None:
    pods = spark_pods(one(render_kustomize(variant), "SparkApplication"))
    out = kubectl.ok("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(pods))
    assert out.count("(server dry run)") == 2


def test_pod_security_rejects_a_root_pod(kubectl: Kubectl) -> None:
    """Negative control: the namespace really enforces the restricted profile."""
    pod = spark_pods(one(render_kustomize("kind"), "SparkApplication"))[0]
    pod["spec"]["securityContext"] = {}
    pod["spec"]["containers"][0]["securityContext"] = {"runAsUser": 0}
    proc = kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(pod))
    assert proc.returncode != 0
    assert "violates PodSecurity" in proc.stderr


# --- fruitlens submit against the API server ----------------------------------------------------


def _manifest(tmp_path: Path, name: str) -> Path:
    app = copy.deepcopy(one(render_kustomize("kind"), "SparkApplication"))
    app["metadata"]["name"] = name
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(app))
    return path


class Submission:
    """`fruitlens submit` on a thread, its output readable while it runs."""

    def __init__(self, argv: list[str]) -> None:
        parser = argparse.ArgumentParser()
        submit.add_submit_arguments(parser)
        self.args = parser.parse_args(argv)
        self.out = io.StringIO()
        self.status: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.status = submit.run_submit(self.args, out=self.out)

    def start(self) -> Submission:
        self.thread.start()
        return self

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.out.getvalue():
            assert self.thread.is_alive() or text in self.out.getvalue(), self.out.getvalue()
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.out.getvalue()}"
            time.sleep(0.05)

    def result(self, timeout: float = 60.0) -> int:
        self.thread.join(timeout)
        assert self.status is not None, self.out.getvalue()
        return self.status


def _operator(api: tuple[Any, Any], name: str) -> Callable[[dict[str, Any]], None]:
    """Writes the status the Spark Operator would write, through the status subresource."""
    custom, _ = api

    def set_status(status: dict[str, Any]) -> None:
        # The CRD requires driverInfo in every status; the operator always writes it.
        status = {"driverInfo": {}, **status}
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "fruitlens", PLURAL, name, {"status": status}
        )

    return set_status


def _argv(server: ApiServer, manifest: Path, *extra: str) -> list[str]:
    return ["--manifest", str(manifest), "--kubeconfig", str(server.kubeconfig),
            "--poll-interval", "0.1", "--timeout", "60", *extra]  # fmt: skip


def test_submit_completed(server: ApiServer, api: tuple[Any, Any], tmp_path: Path) -> None:
    name = "e2e-completed"
    run_ = Submission(_argv(server, _manifest(tmp_path, name))).start()
    run_.wait_for(f"created SparkApplication fruitlens/{name}")
    custom, core = api
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, "fruitlens", PLURAL, name)
    assert stored["spec"]["driver"]["serviceAccount"] == "fruitlens"
    set_status = _operator(api, name)
    run_.wait_for(": NEW")
    set_status({"applicationState": {"state": "SUBMITTED"}})
    run_.wait_for(": SUBMITTED")
    # The driver pod as the operator's spark-submit would create it. No kubelet runs here: the
    # API server answers its log with 204 No Content, which submit follows without complaint.
    pod = spark_pods(stored)[0]
    pod["metadata"]["name"] = f"{name}-driver"
    core.create_namespaced_pod("fruitlens", pod)
    core.patch_namespaced_pod_status(
        f"{name}-driver", "fruitlens", {"status": {"phase": "Running"}}
    )
    set_status(
        {"applicationState": {"state": "RUNNING"}, "driverInfo": {"podName": f"{name}-driver"}}
    )
    run_.wait_for(": RUNNING")
    set_status(
        {"applicationState": {"state": "COMPLETED"}, "driverInfo": {"podName": f"{name}-driver"}}
    )
    assert run_.result() == sparkapp.EXIT_OK, run_.out.getvalue()
    out = run_.out.getvalue()
    assert out.index(": SUBMITTED") < out.index(": RUNNING") < out.index(": COMPLETED")
    assert "driver log unavailable" not in out


def test_submit_failed_exits_non_zero(
    server: ApiServer, api: tuple[Any, Any], tmp_path: Path
) -> None:
    name = "e2e-failed"
    run_ = Submission(_argv(server, _manifest(tmp_path, name))).start()
    run_.wait_for(": NEW")
    set_status = _operator(api, name)
    set_status({"applicationState": {"state": "RUNNING"}})
    run_.wait_for(": RUNNING")
    set_status({"applicationState": {"state": "FAILED", "errorMessage": "driver exited with 1"}})
    assert run_.result() == sparkapp.EXIT_FAILED
    assert "FAILED: driver exited with 1" in run_.out.getvalue()


def test_submit_times_out(server: ApiServer, tmp_path: Path) -> None:
    argv = _argv(server, _manifest(tmp_path, "e2e-timeout"))
    argv[argv.index("--timeout") + 1] = "1"
    run_ = Submission(argv).start()
    assert run_.result() == sparkapp.EXIT_TIMEOUT
    assert "timed out" in run_.out.getvalue()


def test_submit_existing_needs_replace(
    server: ApiServer, api: tuple[Any, Any], tmp_path: Path
) -> None:
    name = "e2e-replace"
    manifest = _manifest(tmp_path, name)
    first = Submission(_argv(server, manifest, "--no-wait")).start()
    assert first.result() == sparkapp.EXIT_OK
    second = Submission(_argv(server, manifest, "--no-wait")).start()
    assert second.result() == sparkapp.EXIT_USAGE
    custom, _ = api
    before = custom.get_namespaced_custom_object(GROUP, VERSION, "fruitlens", PLURAL, name)
    third = Submission(_argv(server, manifest, "--no-wait", "--replace")).start()
    assert third.result() == sparkapp.EXIT_OK, third.out.getvalue()
    after = custom.get_namespaced_custom_object(GROUP, VERSION, "fruitlens", PLURAL, name)
    assert after["metadata"]["uid"] != before["metadata"]["uid"]


def test_submit_sends_the_settings_with_the_application(
    server: ApiServer, api: tuple[Any, Any], tmp_path: Path
) -> None:
    """The ConfigMap the application mounts is created, then replaced on the next submission."""
    objects = copy.deepcopy(render_kustomize("kind"))
    app = one(objects, "SparkApplication")
    settings = one(objects, "ConfigMap", "fruitlens-job")
    app["metadata"]["name"] = "e2e-settings"
    settings["metadata"]["name"] = "e2e-settings-job"
    for volume in app["spec"]["volumes"]:
        if volume.get("configMap", {}).get("name") == "fruitlens-job":
            volume["configMap"]["name"] = "e2e-settings-job"
    _, core = api
    for output in ("s3a://fruitlens/runs/first", "s3a://fruitlens/runs/second"):
        job = yaml.safe_load(settings["data"]["job.yaml"])
        settings["data"]["job.yaml"] = yaml.safe_dump({**job, "output": output})
        manifest = tmp_path / "with-settings.yaml"
        manifest.write_text(yaml.safe_dump_all([settings, app]))
        run_ = Submission(_argv(server, manifest, "--no-wait", "--replace")).start()
        assert run_.result() == sparkapp.EXIT_OK, run_.out.getvalue()
        stored = core.read_namespaced_config_map("e2e-settings-job", "fruitlens")
        assert yaml.safe_load(stored.data["job.yaml"])["output"] == output
    assert "replaced ConfigMap fruitlens/e2e-settings-job" in run_.out.getvalue()


def test_submit_refuses_a_namespace_without_the_chart(
    server: ApiServer, kubectl: Kubectl, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubectl.ok("create", "namespace", "empty")
    app = yaml.safe_load(_manifest(tmp_path, "e2e-nosa").read_text())
    app["metadata"]["namespace"] = "empty"
    manifest = tmp_path / "nosa.yaml"
    manifest.write_text(yaml.safe_dump(app))
    status = submit.run_submit(Submission(_argv(server, manifest)).args, out=io.StringIO())
    assert status == sparkapp.EXIT_USAGE
    assert "serviceaccount empty/fruitlens does not exist" in capsys.readouterr().err


def test_base_kustomization_applies_for_real(kubectl: Kubectl) -> None:
    """`kubectl apply -k k8s/base` as a user runs it (kubectl's built-in kustomize)."""
    out = kubectl.ok("apply", "-k", str(K8S / "base"))
    assert "sparkapplication.sparkoperator.k8s.io/fruitlens created" in out
    kubectl.ok("delete", "sparkapplication", "fruitlens", "-n", "fruitlens")
