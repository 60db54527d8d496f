"""`fruitlens submit` without a cluster: rendering, manifest selection, and the wait loop's
decisions (exit codes, driver log) against scripted API answers."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from fruitlens import sparkapp
from fruitlens.commands import submit
from support.cli import invoke
from support.deploy.harness import CHART, one, render_chart, tool


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    submit.add_submit_arguments(parser)
    return parser.parse_args(argv)


def test_dry_run_from_chart_prints_the_rendered_application() -> None:
    helm = tool("helm")
    values = str(CHART / "values-eks.yaml")
    result = invoke("submit", "--dry-run", "--helm", helm, "-f", values, "--chart", str(CHART))
    assert result.code == 0
    printed = list(yaml.safe_load_all(result.stdout))
    # The application and the settings it mounts, in the order they are created.
    rendered = render_chart("eks")
    assert printed == [one(rendered, "ConfigMap"), one(rendered, "SparkApplication")]


def test_dry_run_set_and_release() -> None:
    argv = ["--dry-run", "--helm", tool("helm"), "--release", "nightly", "-n", "batch"]
    argv += ["--set", "config.output=s3a://b/runs/x"]
    result = invoke("submit", *argv)
    assert result.code == 0
    settings, app = yaml.safe_load_all(result.stdout)
    assert app["metadata"] == {**app["metadata"], "name": "nightly-fruitlens", "namespace": "batch"}
    assert settings["metadata"]["namespace"] == "batch"
    assert yaml.safe_load(settings["data"]["job.yaml"])["output"] == "s3a://b/runs/x"
    mounted = {v["configMap"]["name"] for v in app["spec"]["volumes"] if "configMap" in v}
    assert mounted == {settings["metadata"]["name"]}


def test_chart_errors_are_reported_not_raised() -> None:
    argv = ["--dry-run", "--helm", tool("helm"), "--set", "sparkConf.spark\\.master=local"]
    result = invoke("submit", *argv)
    assert result.code == sparkapp.EXIT_USAGE
    assert "helm template failed" in result.stderr


def test_manifest_file_picks_the_single_application(tmp_path: Path) -> None:
    manifest = tmp_path / "all.yaml"
    unrelated = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "unrelated"}}
    manifest.write_text(yaml.safe_dump_all([*render_chart("kind"), unrelated]))
    result = invoke("submit", "--dry-run", "--manifest", str(manifest))
    assert result.code == 0
    *settings, app = yaml.safe_load_all(result.stdout)
    assert app["kind"] == "SparkApplication" and app["metadata"]["namespace"] == "fruitlens"
    # Only the ConfigMap the application mounts comes along, not the others in the file.
    assert [c["metadata"]["name"] for c in settings] == ["fruitlens-job"]


def test_manifest_namespace_conflict_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump(one(render_chart("kind"), "SparkApplication")))
    with pytest.raises(sparkapp.SubmitError, match="namespace"):
        sparkapp.load_application(parse(["--manifest", str(manifest), "-n", "other"]))


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ([], "found 0"),
        ([{"kind": "SparkApplication"}] * 2, "found 2"),
        ([{"kind": "SparkApplication", "apiVersion": "sparkoperator.k8s.io/v1beta1"}], "v1beta2"),
        ([{"kind": "SparkApplication", "apiVersion": "sparkoperator.k8s.io/v1beta2"}], "name"),
    ],
)
def test_pick_application_refuses(documents: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(sparkapp.SubmitError, match=message):
        sparkapp.pick_application(yaml.safe_dump_all(documents), "test")


class ScriptedApi:
    """Answers get_namespaced_custom_object with a scripted sequence of statuses."""

    def __init__(self, states: list[Any]) -> None:
        self.states = list(states)
        self.reads = 0

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        self.reads += 1
        item = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(item, Exception):
            raise item
        return {"status": item}


class FakeStream:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self) -> list[bytes]:
        return self.chunks


class FakeCore:
    def __init__(self, phase: str, log: list[bytes]) -> None:
        self.phase = phase
        self.log = log
        self.log_requests: list[tuple[str, str]] = []

    def read_namespaced_pod(self, name: str, namespace: str) -> Any:
        return argparse.Namespace(status=argparse.Namespace(phase=self.phase))

    def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs: Any) -> FakeStream:
        assert kwargs["follow"] is True
        self.log_requests.append((namespace, name))
        return FakeStream(self.log)


def _wait(api: ScriptedApi, core: Any = None, timeout: float = 100.0) -> tuple[int, str]:
    out = io.StringIO()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    status = sparkapp.wait_for_application(
        api, core, "ns", "app", timeout, 5.0, out, clock=lambda: now[0], sleep=sleep
    )
    return status, out.getvalue()


def running(pod: str = "app-driver") -> dict[str, Any]:
    return {"applicationState": {"state": "RUNNING"}, "driverInfo": {"podName": pod}}


def test_completed_exits_zero_and_streams_the_driver_log() -> None:
    api = ScriptedApi(
        [
            {},
            {"applicationState": {"state": "SUBMITTED"}},
            running(),
            {"applicationState": {"state": "COMPLETED"}, "driverInfo": {"podName": "app-driver"}},
        ]
    )
    core = FakeCore("Running", [b"featurizing 42 images\n", b"accuracy 0.97\n"])
    status, out = _wait(api, core)
    assert status == sparkapp.EXIT_OK
    assert out.index("NEW") < out.index("SUBMITTED") < out.index("RUNNING") < out.index("COMPLETED")
    assert "featurizing 42 images\naccuracy 0.97\n" in out
    assert core.log_requests == [("ns", "app-driver")]


def test_failed_exits_non_zero_with_the_operator_message() -> None:
    failed = {"applicationState": {"state": "FAILED", "errorMessage": "driver pod failed"}}
    status, out = _wait(ScriptedApi([running(), failed]))
    assert status == sparkapp.EXIT_FAILED
    assert "FAILED: driver pod failed" in out


def test_submission_failed_is_a_failure() -> None:
    status, _ = _wait(ScriptedApi([{"applicationState": {"state": "SUBMISSION_FAILED"}}]))
    assert status == sparkapp.EXIT_FAILED


def test_timeout_exits_124_and_keeps_polling_until_then() -> None:
    api = ScriptedApi([running()])
    status, out = _wait(api, timeout=30.0)
    assert status == sparkapp.EXIT_TIMEOUT
    assert "timed out after 30s in state RUNNING" in out
    assert api.reads == 7  # t = 0, 5, ..., 30


def test_transient_api_errors_are_retried() -> None:
    api = ScriptedApi(
        [
            ApiException(status=503, reason="unavailable"),
            running(),
            {"applicationState": {"state": "COMPLETED"}},
        ]
    )
    status, out = _wait(api)
    assert status == sparkapp.EXIT_OK
    assert "retrying" in out


def test_deleted_application_stops_the_wait() -> None:
    with pytest.raises(sparkapp.SubmitError, match="deleted"):
        _wait(ScriptedApi([running(), ApiException(status=404, reason="gone")]))


def test_pending_driver_pod_is_not_asked_for_logs() -> None:
    core = FakeCore("Pending", [b"never\n"])
    status, out = _wait(
        ScriptedApi([running(), {"applicationState": {"state": "COMPLETED"}}]), core
    )
    assert status == sparkapp.EXIT_OK
    assert core.log_requests == [] and "never" not in out


def test_missing_kubeconfig_is_a_usage_error(tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump(one(render_chart("kind"), "SparkApplication")))
    argv = ["--manifest", str(manifest), "--kubeconfig", str(tmp_path / "missing")]
    result = invoke("submit", *argv)
    assert result.code == sparkapp.EXIT_USAGE
    assert "kubeconfig" in result.stderr


def test_unreachable_api_server_fails_cleanly(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump(one(render_chart("kind"), "SparkApplication")))
    argv = ["--manifest", str(manifest), "--kubeconfig", str(kubeconfig)]
    result = invoke("submit", *argv)
    assert result.code == sparkapp.EXIT_FAILED
    assert "cannot reach the API server" in result.stderr
