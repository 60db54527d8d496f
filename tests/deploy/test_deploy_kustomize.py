"""The kustomize tree: it builds, base/ is what the chart renders, and each overlay deploys the
same job as the chart with the matching values file (one definition, two ways to apply it)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from support.deploy.harness import (
    K8S,
    OVERLAYS,
    ROLE_ANNOTATION,
    ROOT,
    VARIANTS,
    WEB_IDENTITY,
    one,
    render_chart,
    render_kustomize,
    run,
    tool,
)


def test_base_is_generated_from_the_chart() -> None:
    proc = run(
        [".venv/bin/python", "hack/render-base.py", "--check", "--helm", tool("helm")],
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kustomize_is_the_one_kubectl_embeds() -> None:
    """These tests render with `kustomize build`, users apply with `kubectl apply -k`: one
    kustomize version for both (hack/tools.sh pins the one kubectl carries)."""
    standalone = run([tool("kustomize"), "version"])
    client = run([tool("kubectl"), "version", "--client"])
    assert standalone.returncode == 0 and client.returncode == 0, standalone.stderr + client.stderr
    assert f"Kustomize Version: {standalone.stdout.strip()}" in client.stdout.splitlines()


@pytest.mark.parametrize("variant", sorted(OVERLAYS))
def test_kustomize_builds(variant: str) -> None:
    objects = render_kustomize(variant)
    assert all(
        o["metadata"].get("namespace") == "fruitlens" for o in objects if o["kind"] != "Namespace"
    )
    namespace = one(objects, "Namespace", "fruitlens")
    # The API server itself refuses pods that break the restricted Pod Security Standard.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without what legitimately differs between Helm and kustomize (labels)."""
    obj = yaml.safe_load(yaml.safe_dump(obj))
    obj["metadata"].pop("labels", None)
    if obj["kind"] == "ConfigMap":
        obj["data"] = {k: yaml.safe_load(v) for k, v in obj["data"].items()}
    if obj["kind"] == "SparkApplication":
        # YAML spells 1000m or "1000m", 0444 or 292: compare values, not spelling.
        obj["spec"] = yaml.safe_load(yaml.safe_dump(obj["spec"]))
    return obj


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_overlay_matches_chart_values(variant: str) -> None:
    chart = {(o["kind"], o["metadata"]["name"]): o for o in render_chart(variant)}
    kustomized = {(o["kind"], o["metadata"]["name"]): o for o in render_kustomize(variant)}
    for key, obj in chart.items():
        assert key in kustomized, f"{key} missing from k8s/{OVERLAYS[variant].relative_to(K8S)}"
        assert _comparable(kustomized[key]) == _comparable(obj), key
    extra = {k for k in kustomized if k not in chart} - {("Namespace", "fruitlens")}
    assert extra == set()


def test_kind_overlay_serves_s3_in_cluster() -> None:
    kind = render_kustomize("kind")
    app = one(kind, "SparkApplication")
    settings = yaml.safe_load(one(kind, "ConfigMap", "fruitlens-job")["data"]["job.yaml"])
    objects = render_kustomize("kind-s3-server")
    service = one(objects, "Service", "s3")
    endpoint = settings["s3_endpoint"]
    port = service["spec"]["ports"][0]["port"]
    assert endpoint == f"http://{service['metadata']['name']}.fruitlens.svc.cluster.local:{port}"
    assert app["spec"]["image"] == "fruitlens:0.1.0"
    assert app["spec"]["imagePullPolicy"] == "Never"
    deployment = one(objects, "Deployment", "s3")
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= service["spec"]["selector"].items()
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"] + pod["initContainers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The network policy admits the job's pods, whose labels the SparkApplication sets.
    policy = one(objects, "NetworkPolicy", "s3-server")
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    for role in ("driver", "executor"):
        assert allowed.items() <= app["spec"][role]["labels"].items()


def test_eks_overlay_identity_and_encryption() -> None:
    objects = render_kustomize("eks")
    app = one(objects, "SparkApplication")
    account = app["spec"]["driver"]["serviceAccount"]
    assert app["spec"]["executor"]["serviceAccount"] == account
    sa = one(objects, "ServiceAccount", account)
    assert sa["metadata"]["annotations"][ROLE_ANNOTATION].endswith(":role/fruitlens-job")
    settings = yaml.safe_load(one(objects, "ConfigMap", "fruitlens-job")["data"]["job.yaml"])
    assert settings["sse"] == "kms" and settings["sse_kms_key"].startswith("arn:aws:kms:")
    assert settings["s3_credentials_provider"] == WEB_IDENTITY
    assert settings["pseudonymize"] is True
    assert settings["region"] == "eu-west-3"


@pytest.mark.parametrize("variant", ["kind", "eks"])
def test_overlays_patch_settings_not_arguments(variant: str) -> None:
    """Job settings live in the ConfigMap: no overlay restates the command line or s3a."""
    for patch in OVERLAYS[variant].glob("*.yaml"):
        for doc in yaml.safe_load_all(patch.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "SparkApplication":
                assert not {"arguments", "hadoopConf", "sparkConf"} & set(doc["spec"]), patch.name
