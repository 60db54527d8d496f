"""Offline validation of everything the project deploys: Kubernetes schemas, the SparkApplication
CRD, checkov, secrets, and the AWS/eksctl/kind files. Each check has a negative control, so a
validator that silently accepts everything would fail here."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from support.deploy.harness import (
    CHART,
    K8S,
    ROOT,
    all_renders,
    crd_path,
    one,
    render_chart,
    render_kustomize,
    strict_crd_schema,
)
from support.deploy.pods import spark_pods

KUBE_VERSION = "1.35.0"  # the kind node image's (and the eksctl cluster's) minor
# checkov lives in its own venv (`make checkov`): its pinned dependencies clash with ours.
CHECKOV = os.environ.get("FRUITLENS_CHECKOV") or str(Path(sys.executable).parent / "checkov")


@cache
def renders() -> list[tuple[str, list[dict[str, Any]]]]:
    return list(all_renders())


def job_renders() -> list[tuple[str, list[dict[str, Any]]]]:
    """The renders that hold the job: all but the kind clusters' S3 server."""
    return [
        (origin, objects)
        for origin, objects in renders()
        if any(o["kind"] == "SparkApplication" for o in objects)
    ]


@cache
def crd_validator() -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(crd_path().read_text())
    return jsonschema.Draft7Validator(strict_crd_schema(crd))


def core_objects() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{origin}:{o['kind']}/{o['metadata']['name']}", o)
        for origin, objects in renders()
        for o in objects
        if o["kind"] != "SparkApplication"
    ]


def test_every_core_object_matches_kubernetes_schema() -> None:
    objects = core_objects()
    assert len(objects) >= 25
    errors = []
    for label, obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{label}: {exc.message}")
    assert errors == []


def test_kubernetes_schema_check_rejects_a_typo() -> None:
    """Negative control: strict validation does reject an unknown field."""
    role = copy.deepcopy(one(render_chart("default"), "Role"))
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, KUBE_VERSION, strict=True)


def test_every_spark_application_matches_the_crd() -> None:
    validator = crd_validator()
    apps = [
        (o, obj) for o, objects in renders() for obj in objects if obj["kind"] == "SparkApplication"
    ]
    assert len(apps) == 6
    for origin, app in apps:
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(app)]
        assert errors == [], origin


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda s: s["driver"].__setitem__("serviceAcount", "x"), "serviceAcount"),
        (lambda s: s.__setitem__("mode", "standalone"), "mode"),
        (lambda s: s.pop("sparkVersion"), "sparkVersion"),
        (lambda s: s["executor"].__setitem__("instances", "two"), "instances"),
    ],
)
def test_crd_check_rejects_bad_specs(mutate: Any, where: str) -> None:
    app = copy.deepcopy(one(render_chart("default"), "SparkApplication"))
    mutate(app["spec"])
    errors = list(crd_validator().iter_errors(app))
    assert errors, f"a broken {where} went through"
    assert any(where in e.message or where in "/".join(map(str, e.path)) for e in errors)


def _checkov(directory: Path, *extra: str) -> dict[str, Any]:
    proc = subprocess.run(
        [CHECKOV, "-d", str(directory), "-o", "json", *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    out = json.loads(proc.stdout)
    reports = out if isinstance(out, list) else [out]
    report = next(r for r in reports if r["check_type"] == "kubernetes")
    return report


@pytest.mark.slow
def test_checkov_finds_nothing(tmp_path: Path) -> None:
    """Manifests as shipped (no skip but the annotated one), plus the Spark pods the operator
    creates, judged with k8s/checkov-spark-pods.yaml (every skip there carries its reason)."""
    plain = tmp_path / "plain"
    pods = tmp_path / "pods"
    plain.mkdir()
    pods.mkdir()
    for origin, objects in renders():
        (plain / f"{origin.replace(':', '-')}.yaml").write_text(yaml.safe_dump_all(objects))
    for origin, objects in job_renders():
        app = one(objects, "SparkApplication")
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        pod_file = pods / f"{origin.replace(':', '-')}.yaml"
        pod_file.write_text(yaml.safe_dump_all(policies + spark_pods(app)))
    report = _checkov(plain, "--framework", "kubernetes", "--skip-download")
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 100
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped <= {"CKV_K8S_43"}, skipped
    report = _checkov(pods, "--config-file", str(K8S / "checkov-spark-pods.yaml"))
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    resources = {c["resource"] for c in report["results"]["passed_checks"]}
    assert "Pod.fruitlens.fruitlens-driver" in resources
    assert "Pod.fruitlens.fruitlens-executor" in resources


def test_every_checkov_skip_has_a_reason() -> None:
    config_lines = (K8S / "checkov-spark-pods.yaml").read_text().splitlines()
    for i, line in enumerate(config_lines):
        if re.match(r"\s*- CKV", line):
            # The skip, or the run of skips it belongs to, follows a comment that explains it.
            j = i - 1
            while re.match(r"\s*- CKV", config_lines[j]):
                j -= 1
            assert config_lines[j].strip().startswith("#"), line
    annotated = 0
    for path in list(K8S.rglob("*.yaml")) + list(CHART.rglob("*.yaml")):
        for match in re.finditer(r"checkov\.io/skip\d+:\s*(\S+)", path.read_text()):
            annotated += 1
            check, _, reason = match.group(1).partition("=")
            line = re.search(re.escape(match.group(0)) + r"(.*)", path.read_text())
            assert line is not None
            assert re.fullmatch(r"CKV2?_K8S_\d+", check), path
            assert len(reason + line.group(1)) > 20, f"{path}: skip {check} without a reason"
    assert annotated >= 1


AWS_KEY_PATTERNS = [
    re.compile(r"\b(AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    re.compile(r"(?i)aws_secret_access_key\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{16,}"),
    re.compile(r"(?i)aws_session_token\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{16,}"),
    re.compile(r"fs\.s3a\.(access|secret|session)\.key\s*[:=]"),
    re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),
]


def _secret_hits(text: str) -> list[str]:
    return [m.group(0) for p in AWS_KEY_PATTERNS for m in p.finditer(text)]


def test_no_aws_key_anywhere() -> None:
    # The deployment's own files (other documents belong to other concerns and tests).
    sources = [
        p for base in (CHART, K8S, ROOT / "tests" / "support" / "deploy") for p in base.rglob("*")
    ]
    sources += [ROOT / "docs" / "DEPLOY.md", ROOT / "mk" / "k8s.mk"]
    package = ROOT / "app" / "fruitlens"
    sources += [package / "sparkapp.py", package / "commands" / "submit.py"]
    sources += [*ROOT.glob("scripts/*k8s*")]
    sources = [p for p in sources if p.is_file() and p.suffix != ".pyc"]
    hits = {str(p): _secret_hits(p.read_text(errors="replace")) for p in sources}
    rendered = {origin: _secret_hits(yaml.safe_dump_all(objs)) for origin, objs in renders()}
    assert {k: v for k, v in {**hits, **rendered}.items() if v} == {}
    # Negative control: the patterns do catch keys in the shapes they are written in.
    assert _secret_hits("fs.s3a.secret.key: x")
    assert _secret_hits("AKIA" + "IOSFODNN7EXAMPLE")
    assert _secret_hits("AWS_SECRET_ACCESS_KEY=" + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


# --- AWS, eksctl and kind files -----------------------------------------------------------------


def _json(name: str) -> dict[str, Any]:
    return json.loads((K8S / "aws" / name).read_text())


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    assert doc["Version"] == "2012-10-17"
    return doc["Statement"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_iam_policy_is_least_privilege() -> None:
    statements = _statements(_json("iam-policy.json"))
    granted: dict[str, set[str]] = {}
    for st in statements:
        assert st["Effect"] == "Allow"
        for action in _as_list(st["Action"]):
            assert "*" not in action, action
            for resource in _as_list(st["Resource"]):
                assert resource != "*" and not resource.endswith(":::BUCKET/*"), resource
                granted.setdefault(action, set()).add(resource)
    assert set(granted) == {
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:ListBucketMultipartUploads",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
    }
    assert granted["s3:GetObject"] == {"arn:aws:s3:::BUCKET/raw/*", "arn:aws:s3:::BUCKET/runs/*"}
    for write in ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"):
        assert granted[write] == {"arn:aws:s3:::BUCKET/runs/*"}, write
    listing = next(st for st in statements if st["Action"] == "s3:ListBucket")
    prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
    assert "raw/*" in prefixes and "runs/*" in prefixes
    kms = next(st for st in statements if "kms:Decrypt" in _as_list(st["Action"]))
    assert re.fullmatch(r"arn:aws:kms:eu-west-3:ACCOUNT_ID:key/KEY_ID", kms["Resource"])


def test_trust_policy_names_the_chart_service_account() -> None:
    statement = _statements(_json("trust-policy.json"))[0]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(":oidc-provider/OIDC_PROVIDER")
    conditions = statement["Condition"]["StringEquals"]
    assert conditions["OIDC_PROVIDER:aud"] == "sts.amazonaws.com"
    eks = render_chart("eks")
    app = one(eks, "SparkApplication")
    sa = app["spec"]["driver"]["serviceAccount"]
    namespace = app["metadata"]["namespace"]
    assert conditions["OIDC_PROVIDER:sub"] == f"system:serviceaccount:{namespace}:{sa}"


def test_bucket_policy_enforces_tls_and_kms() -> None:
    statements = {st["Sid"]: st for st in _statements(_json("bucket-policy.json"))}
    assert all(st["Effect"] == "Deny" and st["Principal"] == "*" for st in statements.values())
    tls = [st for st in statements.values() if "aws:SecureTransport" in json.dumps(st)]
    assert tls and tls[0]["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    conditions = json.dumps([st["Condition"] for st in statements.values()])
    assert '"Null": {"s3:x-amz-server-side-encryption": "true"}' in conditions
    assert '"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}' in conditions
    # The key the bucket insists on is the one the chart encrypts with.
    settings = yaml.safe_load(one(render_chart("eks"), "ConfigMap")["data"]["job.yaml"])
    assert settings["sse_kms_key"] in conditions


def test_public_access_block_and_lifecycle() -> None:
    block = _json("public-access-block.json")
    assert block == {k: True for k in block} and len(block) == 4
    rules = _json("lifecycle.json")["Rules"]
    runs = next(r for r in rules if r["Filter"].get("Prefix") == "runs/")
    assert runs["Status"] == "Enabled" and runs["Expiration"]["Days"] > 0
    # Every output the chart and overlays write lands under the expiring prefix.
    for _, objects in job_renders():
        settings = one(objects, "ConfigMap", "fruitlens-job")["data"]["job.yaml"]
        output = yaml.safe_load(settings)["output"]
        assert re.fullmatch(r"s3a://[^/]+/runs/.+", output), output


def test_aws_documents_accepted_by_moto() -> None:
    """moto implements IAM's policy grammar checks and S3's configuration parsers."""
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    concrete = {"ACCOUNT_ID": "123456789012", "BUCKET": "fruitlens-test", "KEY_ID": "1234abcd"}

    def load(name: str) -> str:
        text = (K8S / "aws" / name).read_text()
        for placeholder, value in concrete.items():
            text = text.replace(placeholder, value)
        return text.replace("OIDC_PROVIDER", "oidc.eks.eu-west-3.amazonaws.com/id/EXAMPLE")

    with moto.mock_aws():
        iam = boto3.client("iam", region_name="eu-west-3")
        iam.create_policy(PolicyName="fruitlens-job", PolicyDocument=load("iam-policy.json"))
        iam.create_role(
            RoleName="fruitlens-job", AssumeRolePolicyDocument=load("trust-policy.json")
        )
        s3 = boto3.client("s3", region_name="eu-west-3")
        s3.create_bucket(
            Bucket="fruitlens-test",
            CreateBucketConfiguration={"LocationConstraint": "eu-west-3"},
        )
        s3.put_bucket_policy(Bucket="fruitlens-test", Policy=load("bucket-policy.json"))
        s3.put_public_access_block(
            Bucket="fruitlens-test",
            PublicAccessBlockConfiguration=json.loads(load("public-access-block.json")),
        )
        s3.put_bucket_lifecycle_configuration(
            Bucket="fruitlens-test", LifecycleConfiguration=json.loads(load("lifecycle.json"))
        )
        rule = s3.get_bucket_lifecycle_configuration(Bucket="fruitlens-test")["Rules"][0]
        assert rule["Filter"]["Prefix"] == "runs/"
        with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
            iam.create_policy(PolicyName="broken", PolicyDocument='{"Version": "2012-10-17"}')


def test_eksctl_cluster_config() -> None:
    cluster = yaml.safe_load((K8S / "eks" / "cluster.yaml").read_text())
    assert cluster["apiVersion"] == "eksctl.io/v1alpha5" and cluster["kind"] == "ClusterConfig"
    assert cluster["metadata"]["region"] == "eu-west-3"
    assert cluster["iam"]["withOIDC"] is True
    app = one(render_kustomize("eks"), "SparkApplication")
    accounts = cluster["iam"]["serviceAccounts"]
    assert [(a["metadata"]["namespace"], a["metadata"]["name"]) for a in accounts] == [
        (app["metadata"]["namespace"], app["spec"]["driver"]["serviceAccount"])
    ]
    # The chart owns the annotated service account; eksctl must create only the role.
    assert accounts[0]["roleOnly"] is True
    assert one(render_kustomize("eks"), "ServiceAccount")["metadata"]["annotations"][
        "eks.amazonaws.com/role-arn"
    ].endswith(f":role/{accounts[0]['roleName']}")
    # Node selector of the job = label of the node group.
    groups = {g["name"]: g for g in cluster["managedNodeGroups"]}
    selector = app["spec"]["executor"]["nodeSelector"]
    assert any(selector.items() <= g.get("labels", {}).items() for g in groups.values())
    assert all(g["disablePodIMDS"] for g in groups.values())


def test_kind_cluster_config() -> None:
    cluster = yaml.safe_load((K8S / "kind" / "cluster.yaml").read_text())
    assert cluster["kind"] == "Cluster" and cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert {n["image"] for n in cluster["nodes"]} == {"kindest/node:v1.35.0"}
    assert KUBE_VERSION.rsplit(".", 1)[0] in cluster["nodes"][0]["image"]
