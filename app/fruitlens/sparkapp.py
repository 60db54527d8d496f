"""A SparkApplication on Kubernetes: rendered from the chart, created, followed to its end.

The manifest comes from the Helm chart (`helm template`, so the chart stays the one definition of
the job) or from a file; the settings ConfigMap the application mounts is created or replaced
with it, so the job runs with the settings submitted. The operator does the spark-submit.
`fruitlens submit` (commands/submit.py) then follows `status.applicationState.state` until the
application ends, streams the driver's log while it runs, and turns the outcome into an exit
status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

import urllib3
import yaml

from fruitlens import paths
from fruitlens.errors import UsageError

GROUP = "sparkoperator.k8s.io"
VERSION = "v1beta2"
PLURAL = "sparkapplications"
KIND = "SparkApplication"

COMPLETED = "COMPLETED"
# SUBMISSION_FAILED never reaches FAILED: the operator gave up before a driver existed.
FAILED_STATES = frozenset({"FAILED", "SUBMISSION_FAILED"})

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# Same code as coreutils `timeout`, so wrappers can tell "took too long" from "failed".
EXIT_TIMEOUT = 124

DEFAULT_NAMESPACE = "fruitlens"
DEFAULT_RELEASE = "fruitlens"


class SubmitError(UsageError):
    """Something the person submitting can fix; printed without a traceback."""


def default_chart() -> Path:
    """The chart next to the sources in a checkout; FRUITLENS_CHART elsewhere (wheel installs)."""
    env = os.environ.get("FRUITLENS_CHART")
    if env:
        return Path(env)
    return paths.REPO_ROOT / "helm" / "fruitlens"


def find_helm(explicit: str | None) -> str:
    """helm from the flag, FRUITLENS_HELM, PATH, then the copy `make k8s-tools` builds."""
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise SubmitError(f"--helm {explicit}: not an executable file")
        return explicit
    candidates = [os.environ.get("FRUITLENS_HELM"), shutil.which("helm")]
    candidates.append(str(paths.cache_dir() / "tools" / "bin" / "helm"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SubmitError("helm not found: run `make k8s-tools`, put helm on PATH or pass --helm")


def render_chart(
    chart: Path,
    release: str,
    namespace: str,
    values: Iterable[str],
    set_values: Iterable[str],
    helm: str,
) -> str:
    """`helm template` output: the chart's schema and `fail` checks run here, before submission."""
    cmd = [helm, "template", release, str(chart), "--namespace", namespace]
    for path in values:
        cmd += ["--values", path]
    for item in set_values:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SubmitError(f"helm template failed:\n{proc.stderr.strip()}")
    return proc.stdout


def pick_application(text: str, origin: str) -> dict[str, Any]:
    """The single SparkApplication among the documents; two would make "the job" ambiguous."""
    apps = [
        doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict) and doc.get("kind") == KIND
    ]
    if len(apps) != 1:
        raise SubmitError(f"{origin}: expected exactly one {KIND}, found {len(apps)}")
    app = apps[0]
    api_version = app.get("apiVersion")
    if api_version != f"{GROUP}/{VERSION}":
        raise SubmitError(f"{origin}: apiVersion {api_version!r}, expected {GROUP}/{VERSION}")
    if not app.get("metadata", {}).get("name"):
        raise SubmitError(f"{origin}: the {KIND} has no metadata.name")
    return app


def mounted_config_maps(text: str, app: dict[str, Any]) -> list[dict[str, Any]]:
    """The ConfigMaps among the documents that the application mounts: its job settings."""
    names = {
        volume["configMap"]["name"]
        for volume in app.get("spec", {}).get("volumes", [])
        if volume.get("configMap", {}).get("name")
    }
    return [
        doc
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict)
        and doc.get("kind") == "ConfigMap"
        and doc.get("metadata", {}).get("name") in names
    ]


def load_application(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The SparkApplication and the settings ConfigMaps it mounts that came with it.

    The job's settings live in a ConfigMap (job.yaml), so submitting the application alone
    would run it with whatever settings the cluster holds; the two travel together.
    """
    if args.manifest:
        text = Path(args.manifest).read_text(encoding="utf-8")
        app = pick_application(text, args.manifest)
    else:
        chart = Path(args.chart) if args.chart else default_chart()
        if not (chart / "Chart.yaml").is_file():
            raise SubmitError(f"no Helm chart at {chart} (pass --chart or --manifest)")
        namespace = args.namespace or DEFAULT_NAMESPACE
        text = render_chart(
            chart, args.release, namespace, args.values, args.set_values, find_helm(args.helm)
        )
        app = pick_application(text, f"helm template {chart}")
    metadata = app.setdefault("metadata", {})
    namespace = args.namespace or metadata.get("namespace") or DEFAULT_NAMESPACE
    if metadata.get("namespace") not in (None, namespace):
        raise SubmitError(
            f"the manifest says namespace {metadata['namespace']!r} but --namespace is "
            f"{namespace!r}; the driver's Role and service account live in one of them only"
        )
    metadata["namespace"] = namespace
    settings = mounted_config_maps(text, app)
    for config_map in settings:
        config_map["metadata"]["namespace"] = namespace
    return app, settings


def kube_clients(kubeconfig: str | None, context: str | None) -> tuple[Any, Any]:
    """Custom-objects and core clients from a kubeconfig, else the in-cluster account."""
    from kubernetes import client, config

    try:
        config.load_kube_config(config_file=kubeconfig, context=context)
    except config.ConfigException as exc:
        if kubeconfig or context:
            raise SubmitError(f"kubeconfig: {exc}") from exc
        try:
            config.load_incluster_config()
        except config.ConfigException as in_cluster:
            raise SubmitError(
                f"no Kubernetes configuration: {exc}; not in a pod either ({in_cluster})"
            ) from in_cluster
    return client.CustomObjectsApi(), client.CoreV1Api()


def check_prerequisites(core: Any, app: dict[str, Any], submitted: Iterable[str] = ()) -> None:
    """Fail before submission on what would only show up as a pod stuck in ContainerCreating.

    The chart's ServiceAccount and RBAC are installed by `helm install` or `kubectl apply -k`;
    submit creates the SparkApplication and the ConfigMaps named in `submitted`, so only the
    other ones must already exist.
    """
    from kubernetes.client.exceptions import ApiException

    namespace = app["metadata"]["namespace"]
    spec = app.get("spec", {})
    needed: list[tuple[str, str, Callable[[str, str], Any]]] = []
    for role in ("driver", "executor"):
        account = spec.get(role, {}).get("serviceAccount")
        if account:
            needed.append(("serviceaccount", account, core.read_namespaced_service_account))
    for volume in spec.get("volumes", []):
        config_map = volume.get("configMap", {}).get("name")
        if config_map and config_map not in submitted:
            needed.append(("configmap", config_map, core.read_namespaced_config_map))
    seen: set[tuple[str, str]] = set()
    for kind, name, read in needed:
        if (kind, name) in seen:
            continue
        seen.add((kind, name))
        try:
            read(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SubmitError(
                    f"{kind} {namespace}/{name} does not exist: install the chart "
                    "(helm install) or the kustomize base (kubectl apply -k) first"
                ) from exc
            if exc.status != 403:  # may not read them, yet may still submit: let the operator tell
                raise


def create_application(
    api: Any,
    core: Any,
    app: dict[str, Any],
    settings: list[dict[str, Any]],
    replace: bool,
    out: TextIO,
) -> None:
    """Create the application after its settings; an existing one is replaced only if asked.

    The existence check comes first so that a refused submission changes nothing, not even
    the settings of the application already there.
    """
    from kubernetes.client.exceptions import ApiException

    namespace = app["metadata"]["namespace"]
    name = app["metadata"]["name"]
    try:
        api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    else:
        if not replace:
            raise SubmitError(
                f"{KIND} {namespace}/{name} already exists; pass --replace to delete it first, "
                "or --release/--set to choose another name"
            )
        print(f"deleting the existing {KIND} {namespace}/{name}", file=out)
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        wait_deleted(api, namespace, name)
    for config_map in settings:
        apply_config_map(core, config_map, out)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, app)
    print(f"created {KIND} {namespace}/{name}", file=out, flush=True)


def apply_config_map(core: Any, config_map: dict[str, Any], out: TextIO) -> None:
    """Create the ConfigMap, or replace the one of that name (the settings of an earlier run)."""
    from kubernetes.client.exceptions import ApiException

    namespace = config_map["metadata"]["namespace"]
    name = config_map["metadata"]["name"]
    try:
        core.create_namespaced_config_map(namespace, config_map)
        verb = "created"
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_config_map(name, namespace, config_map)
        verb = "replaced"
    print(f"{verb} ConfigMap {namespace}/{name}", file=out, flush=True)


def wait_deleted(api: Any, namespace: str, name: str, timeout: float = 120.0) -> None:
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(1.0)
    raise SubmitError(f"{KIND} {namespace}/{name} still exists {timeout:.0f}s after deletion")


class DriverLog:
    """Follows the driver pod's log on a thread, so status polling never waits on log lines."""

    def __init__(self, core: Any, namespace: str, pod: str, out: TextIO) -> None:
        self.core = core
        self.namespace = namespace
        self.pod = pod
        self.out = out
        self.error: str | None = None
        self._thread = threading.Thread(target=self._follow, name=f"log-{pod}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _follow(self) -> None:
        try:
            stream = self.core.read_namespaced_pod_log(
                self.pod, self.namespace, follow=True, _preload_content=False
            )
            for chunk in stream.stream():
                text = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
                self.out.write(text)
                self.out.flush()
        except Exception as exc:  # a log we cannot read must never fail the job's outcome
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _driver_pod_started(core: Any, namespace: str, pod: str) -> bool:
    """A log exists once the container ran: Pending pods answer the log call with 400."""
    from kubernetes.client.exceptions import ApiException

    try:
        phase = core.read_namespaced_pod(pod, namespace).status.phase
    except ApiException:
        return False
    return phase in {"Running", "Succeeded", "Failed"}


def wait_for_application(
    api: Any,
    core: Any | None,
    namespace: str,
    name: str,
    timeout: float,
    poll_interval: float,
    out: TextIO,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Poll the application until it ends; return the process exit status for its outcome."""
    deadline = clock() + timeout
    last_state: str | None = None
    log: DriverLog | None = None
    while True:
        app = _read_application(api, namespace, name, out)
        status = (app or {}).get("status") or {}
        state = (status.get("applicationState") or {}).get("state") or "NEW"
        if state != last_state:
            print(f"{KIND} {namespace}/{name}: {state}", file=out, flush=True)
            last_state = state
        pod = (status.get("driverInfo") or {}).get("podName")
        if core is not None and log is None and pod and _driver_pod_started(core, namespace, pod):
            log = DriverLog(core, namespace, pod, out)
            log.start()
        if app is not None and (state == COMPLETED or state in FAILED_STATES):
            if log is not None:
                # The operator reports the end slightly after the pod: let the tail arrive.
                log.join(timeout=10.0)
                if log.error:
                    print(f"driver log unavailable: {log.error}", file=out)
            if state == COMPLETED:
                return EXIT_OK
            message = (status.get("applicationState") or {}).get("errorMessage") or ""
            print(f"{KIND} {namespace}/{name} {state}: {message}".rstrip(": "), file=out)
            return EXIT_FAILED
        if clock() >= deadline:
            print(
                f"timed out after {timeout:.0f}s in state {state}; the application keeps "
                f"running (kubectl -n {namespace} get sparkapplication {name})",
                file=out,
            )
            return EXIT_TIMEOUT
        sleep(min(poll_interval, max(0.0, deadline - clock())))


def _read_application(api: Any, namespace: str, name: str, out: TextIO) -> dict[str, Any] | None:
    """The application, or None after a transient error: a long job outlives API server hiccups."""
    from kubernetes.client.exceptions import ApiException

    try:
        return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            raise SubmitError(f"{KIND} {namespace}/{name} was deleted while waiting") from exc
        if exc.status is not None and exc.status < 500 and exc.status != 429:
            raise
        print(f"status read failed ({exc.status} {exc.reason}); retrying", file=out)
    except (OSError, urllib3.exceptions.HTTPError) as exc:  # reset, DNS, TLS: retried
        print(f"status read failed ({exc}); retrying", file=out)
    return None


def api_message(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message", exc.body))
    except (TypeError, ValueError, AttributeError):
        return str(exc.body)
