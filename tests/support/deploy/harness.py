"""Shared by the deployment tests: where the tools and files are, how manifests are rendered.

Tools come from `make k8s-tools` ($FRUITLENS_CACHE/tools/bin); a test whose tool is missing is
skipped with the command that installs it, never silently passed.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "helm" / "fruitlens"
K8S = ROOT / "k8s"
NAMESPACE = "fruitlens"
RELEASE = "fruitlens"

# Values files and the kustomize overlay that must render the same SparkApplication.
VARIANTS: dict[str, list[Path]] = {
    "default": [],
    "kind": [CHART / "values-kind.yaml"],
    "eks": [CHART / "values-eks.yaml"],
}
OVERLAYS = {
    "default": K8S / "base",
    "kind": K8S / "overlays" / "kind",
    "eks": K8S / "overlays" / "eks",
}
# Every kustomization the project ships: the job's overlays, and the S3 server that kind
# clusters run next to the job (not a variant of the job itself).
KUSTOMIZATIONS = {**OVERLAYS, "kind-s3-server": K8S / "kind" / "s3-server"}

# The Spark Operator v2.5.2 webhook rejects these in sparkConf (shared/REFERENCE.md).
WEBHOOK_REJECTED = (
    "spark.master",
    "spark.kubernetes.namespace",
    "spark.kubernetes.container.image",
    "spark.kubernetes.driver.container.image",
    "spark.kubernetes.executor.container.image",
    "spark.kubernetes.authenticate.driver.serviceAccountName",
    "spark.kubernetes.authenticate.executor.serviceAccountName",
)
WEB_IDENTITY = "software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider"
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


def tools_bin() -> Path:
    cache = Path(os.environ.get("FRUITLENS_CACHE", Path.home() / ".cache" / "fruitlens"))
    return Path(os.environ.get("FRUITLENS_TOOLS", cache / "tools")) / "bin"


def tool(name: str) -> str:
    """Path of a `make k8s-tools` binary, or skip the test saying how to get it."""
    path = tools_bin() / name
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    pytest.skip(f"{name} not built: run `make k8s-tools` ({path} missing)")


def shared_dir() -> Path:
    return Path(os.environ.get("FRUITLENS_SHARED", ROOT.parent / "shared"))


def crd_path() -> Path:
    path = shared_dir() / "schemas" / "sparkoperator.k8s.io_sparkapplications.yaml"
    if not path.is_file():
        pytest.skip(f"SparkApplication CRD not found at {path} (set FRUITLENS_SHARED)")
    return path


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def helm_template(
    values: Iterable[Path | str] = (),
    sets: Iterable[str] = (),
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> subprocess.CompletedProcess[str]:
    cmd = [tool("helm"), "template", release, str(CHART), "--namespace", namespace]
    for path in values:
        cmd += ["--values", str(path)]
    for item in sets:
        cmd += ["--set", item]
    return run(cmd)


def docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]


@functools.cache
def chart_text(variant: str) -> str:
    proc = helm_template(VARIANTS[variant])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def render_chart(variant: str) -> list[dict[str, Any]]:
    """Fresh objects each call (tests may mutate them); the helm run itself is cached."""
    return docs(chart_text(variant))


@functools.cache
def kustomize_text(variant: str) -> str:
    proc = run([tool("kustomize"), "build", str(KUSTOMIZATIONS[variant])])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def render_kustomize(variant: str) -> list[dict[str, Any]]:
    return docs(kustomize_text(variant))


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        o
        for o in objects
        if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def all_renders() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Every object set the project ships: chart x values files, and each kustomization."""
    for variant in VARIANTS:
        yield f"helm:{variant}", render_chart(variant)
    for variant in KUSTOMIZATIONS:
        yield f"kustomize:{variant}", render_kustomize(variant)


def strict_crd_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD's openAPIV3Schema as JSON Schema that also rejects unknown fields.

    The API server prunes unknown fields of a CRD silently (unless the client asks for strict
    field validation), so a misspelt key would be lost without any error: reject it here.
    """
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta2")
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    # metadata is validated by the API server itself, not by the CRD's schema.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def have_docker_engine() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    return run([docker, "info"], timeout=20).returncode == 0
