"""The Helm chart: lint, its values schema, and what the rendered SparkApplication promises
(identity, credentials, encryption, versions, pod security) for each values file."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
from pathlib import Path
from typing import Any

import pyspark
import pytest
import yaml

from fruitlens import config as fl_config
from fruitlens import session
from support.deploy.harness import (
    CHART,
    ROLE_ANNOTATION,
    ROOT,
    VARIANTS,
    WEB_IDENTITY,
    WEBHOOK_REJECTED,
    helm_template,
    one,
    render_chart,
    run,
    tool,
)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render_chart(request.param)


def app_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "SparkApplication")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_strict(variant: str) -> None:
    cmd = [tool("helm"), "lint", "--strict", str(CHART), "--namespace", "fruitlens"]
    for path in VARIANTS[variant]:
        cmd += ["--values", str(path)]
    proc = run(cmd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_renders_the_expected_objects(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ConfigMap",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "SparkApplication",
    ]
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["helm.sh/chart"] == "fruitlens-0.1.0"
        for key in ("name", "instance", "version", "managed-by"):
            assert labels[f"app.kubernetes.io/{key}"], key
        assert obj["metadata"]["namespace"] == "fruitlens"


def test_application_core_fields(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    spec = app_of(objects)["spec"]
    assert app_of(objects)["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert spec["type"] == "Python"
    assert spec["mode"] == "cluster"
    # local://: an s3a:// main file would make the operator pod need S3 credentials (#639).
    assert spec["mainApplicationFile"] == "local:///opt/fruitlens/main.py"
    assert spec["arguments"][0] == "run"


def test_versions_agree_with_installed_pyspark(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """sparkVersion = pyspark = the Spark of the image; the image tag is the app version."""
    _, objects = rendered
    spec = app_of(objects)["spec"]
    assert spec["sparkVersion"] == pyspark.__version__
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == importlib.metadata.version("fruitlens")
    assert spec["image"].rsplit(":", 1)[1] == chart["appVersion"]
    requires = importlib.metadata.requires("fruitlens") or []
    assert f"pyspark=={spec['sparkVersion']}" in requires


def test_dockerfile_spark_base_matches_pyspark() -> None:
    dockerfile = ROOT / "docker" / "Dockerfile"
    if not dockerfile.is_file():
        pytest.skip("docker/Dockerfile not written yet")
    text = dockerfile.read_text()
    tags = re.findall(r"apache/spark:([0-9][0-9A-Za-z.\-]*)", text)
    assert tags, "the Dockerfile should build FROM apache/spark:<version>"
    version = re.escape(pyspark.__version__)
    assert all(re.match(version + r"(?![0-9])", t) for t in tags), tags


def test_driver_and_executors_share_the_annotated_account(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    variant, objects = rendered
    spec = app_of(objects)["spec"]
    account = spec["driver"]["serviceAccount"]
    assert spec["executor"]["serviceAccount"] == account, "executors would use another identity"
    sa = one(objects, "ServiceAccount", account)
    binding = one(objects, "RoleBinding")
    assert {"kind": "ServiceAccount", "name": account, "namespace": "fruitlens"} in binding[
        "subjects"
    ]
    role = one(objects, "Role", binding["roleRef"]["name"])
    granted = {r: set(rule["verbs"]) for rule in role["rules"] for r in rule["resources"]}
    for resource in ("pods", "services", "configmaps", "persistentvolumeclaims"):
        assert {"create", "get", "list", "delete"} <= granted[resource], resource
    assert "secrets" not in granted and "*" not in str(role["rules"])
    annotations = sa["metadata"].get("annotations") or {}
    if variant == "kind":
        assert ROLE_ANNOTATION not in annotations
    else:
        assert re.fullmatch(
            r"arn:aws:iam::(\d{12}|ACCOUNT_ID):role/fruitlens-job", annotations[ROLE_ANNOTATION]
        )


def job_yaml(objects: list[dict[str, Any]]) -> str:
    """The ConfigMap's job.yaml with its placeholder bucket replaced, as before deploying
    (docs/DEPLOY.md); left as is, the job refuses it before Spark starts: BUCKET is not a
    valid bucket name."""
    return one(objects, "ConfigMap")["data"]["job.yaml"].replace(
        "s3a://BUCKET/", "s3a://fruits-eu/"
    )


def job_config(objects: list[dict[str, Any]], tmp_path: Path) -> fl_config.Config:
    """The Config the driver builds from the rendered command line and ConfigMap."""
    spec = app_of(objects)["spec"]
    config_file = tmp_path / "job.yaml"
    config_file.write_text(job_yaml(objects))
    args = list(spec["arguments"][1:])
    args[args.index("--config") + 1] = str(config_file)
    flags = vars(_run_parser().parse_args(args))
    return fl_config.build_config(fl_config.RUN, flags, environ={})


def test_manifest_restates_no_s3a_setting(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """fruitlens builds them (session.s3a_settings); the manifest passes only job settings."""
    _, objects = rendered
    spec = app_of(objects)["spec"]
    assert "hadoopConf" not in spec
    assert not any("s3a" in key or "commit" in key for key in spec.get("sparkConf", {}))
    assert spec["arguments"] == ["run", "--config", "/etc/fruitlens/job.yaml"]


def test_s3a_settings_the_job_builds(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """What s3a gets on each target, computed by the job's own code from the chart's files."""
    variant, objects = rendered
    s3a = session.s3a_settings(job_config(objects, tmp_path))
    hadoop = {k.removeprefix("spark.hadoop."): v for k, v in s3a.items() if "hadoop" in k}
    provider = hadoop["fs.s3a.aws.credentials.provider"]
    if variant == "kind":
        assert provider == "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider"
        assert hadoop["fs.s3a.path.style.access"] == "true"
        assert hadoop["fs.s3a.connection.ssl.enabled"] == "false"
        assert hadoop["fs.s3a.endpoint"].startswith("http://s3.fruitlens.svc")
        # s3a names SSE-S3 "AES256"; it refuses the string "SSE-S3" as an unknown algorithm.
        assert hadoop["fs.s3a.encryption.algorithm"] == "AES256"
        assert "fs.s3a.encryption.key" not in hadoop
    else:
        assert provider == WEB_IDENTITY
        assert "fs.s3a.endpoint" not in hadoop
        assert hadoop["fs.s3a.encryption.algorithm"] == "SSE-KMS"
        assert hadoop["fs.s3a.encryption.key"].startswith("arn:aws:kms:eu-west-3:")
    assert hadoop["fs.s3a.endpoint.region"] == "eu-west-3"
    assert hadoop["fs.s3a.committer.name"] == "magic"
    assert s3a["spark.sql.sources.commitProtocolClass"] == (
        "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol"
    )
    # The region the JVM's STS client sees is the job's own.
    for role in ("driver", "executor"):
        env = {e["name"]: e["value"] for e in app_of(objects)["spec"][role]["env"]}
        assert env["AWS_REGION"] == hadoop["fs.s3a.endpoint.region"]


def test_irsa_provider_can_be_overridden(tmp_path: Path) -> None:
    provider = "software.amazon.awssdk.auth.credentials.ContainerCredentialsProvider"
    proc = helm_template(sets=[f"config.s3_credentials_provider={provider}"])
    assert proc.returncode == 0, proc.stderr
    objects = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert job_config(objects, tmp_path).s3_credentials_provider == provider


def test_no_webhook_rejected_spark_conf(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    spec = app_of(objects)["spec"]
    assert not set(spec.get("sparkConf", {})) & set(WEBHOOK_REJECTED)


@pytest.mark.parametrize("key", WEBHOOK_REJECTED)
def test_chart_refuses_webhook_rejected_keys(key: str) -> None:
    proc = helm_template(sets=[f"sparkConf.{key.replace('.', chr(92) + '.')}=x"])
    assert proc.returncode != 0
    assert key in proc.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["config.region=us-east-1"], "/config/region"),
        (["config.sse_kms_key=null"], "sse_kms_key"),
        (["config.input=/local/path"], "/config/input"),
        (["config.batchsize=3"], "batchsize"),
        (["config.classifier=svm"], "/config/classifier"),
        (["unknownTopLevel=1"], "unknownTopLevel"),
        (["driver.memory=2GB"], "/driver/memory"),
        (["mainApplicationFile=s3a://b/main.py"], "mainApplicationFile"),
        (["config.spark_conf[0]=spark.hadoop.fs.s3a.secret.key=x"], "/config/spark_conf/0"),
        (["extraEnv[0].name=AWS_SECRET_ACCESS_KEY", "extraEnv[0].value=x"], "extraEnv"),
    ],
)
def test_values_schema_rejects(sets: list[str], message: str) -> None:
    proc = helm_template(sets=sets)
    assert proc.returncode != 0, f"{sets} should be refused"
    assert message in proc.stderr


def test_values_schema_is_strict_everywhere() -> None:
    """Every object in the schema either lists its keys or says what its values are."""
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            if "additionalProperties" not in node and path not in {"/global"}:
                open_objects.append(path)
            for name, child in node["properties"].items():
                walk(child, f"{path}/{name}")

    walk(schema, "")
    assert open_objects == []


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fruitlens run", exit_on_error=False)
    fl_config.add_arguments(parser, fl_config.RUN)
    return parser


def test_job_yaml_is_accepted_by_fruitlens(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The driver's command line and ConfigMap pass fruitlens' own settings contract."""
    _, objects = rendered
    spec = app_of(objects)["spec"]
    args = spec["arguments"]
    mount = next(m for m in spec["driver"]["volumeMounts"] if m["name"] == "job-config")
    assert args[args.index("--config") + 1] == f"{mount['mountPath']}/job.yaml"
    cfg = job_config(objects, tmp_path)
    assert cfg.region in fl_config.EU_REGIONS
    assert cfg.input and cfg.input.startswith("s3a://")
    file_settings = yaml.safe_load(job_yaml(objects))
    for name, value in file_settings.items():
        assert getattr(cfg, name) == value, name


def test_settings_in_schema_are_fruitlens_run_settings() -> None:
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    allowed = set(schema["properties"]["config"]["properties"])
    run_settings = {f.name for f in fl_config.fields_for(fl_config.RUN)}
    assert allowed <= run_settings, allowed - run_settings
    # The chart's own fields decide these (the operator rejects spark.master; the jars and
    # the region exception have no place on the EU cluster).
    assert not allowed & {"master", "jars_dir", "allow_non_eu_region"}
    classifier = fl_config.Config.__dataclass_fields__["classifier"].metadata["choices"]
    assert schema["properties"]["config"]["properties"]["classifier"]["enum"] == list(classifier)


def test_pod_security(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    spec = app_of(objects)["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    for role in ("driver", "executor"):
        pod = spec[role]
        psc, sc = pod["podSecurityContext"], pod["securityContext"]
        assert psc["runAsUser"] == psc["runAsGroup"] == psc["fsGroup"] == 185
        assert psc["runAsNonRoot"] is True
        assert psc["seccompProfile"]["type"] == "RuntimeDefault"
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 185
        mounts = {m["mountPath"]: m["name"] for m in pod["volumeMounts"]}
        # Every writable path is a size-limited emptyDir.
        for path in ("/tmp", "/opt/spark/work-dir"):
            assert volumes[mounts[path]]["emptyDir"]["sizeLimit"]
        local = [n for n in mounts.values() if n.startswith("spark-local-dir-")]
        assert local and all(volumes[n]["emptyDir"]["sizeLimit"] for n in local)
        env = {e["name"]: e["value"] for e in pod["env"]}
        assert env["HOME"].startswith("/tmp") and env["MPLCONFIGDIR"].startswith("/tmp")
        assert pod["memoryOverhead"] and pod["coreLimit"]
    assert any(m["mountPath"] == "/etc/fruitlens" for m in spec["driver"]["volumeMounts"])


def test_network_policy_selects_and_admits_the_spark_pods(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, objects = rendered
    spec = app_of(objects)["spec"]
    policy = one(objects, "NetworkPolicy")["spec"]
    selected = policy["podSelector"]["matchLabels"]
    admitted = policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    for role in ("driver", "executor"):
        labels = spec[role]["labels"]
        assert selected.items() <= labels.items(), f"{role} pods not covered by the policy"
        assert admitted.items() <= labels.items(), f"{role} pods could not reach each other"


def test_image_digest_pins_the_image() -> None:
    digest = "sha256:" + "ab" * 32
    proc = helm_template(sets=[f"image.digest={digest}"])
    assert proc.returncode == 0, proc.stderr
    app = next(d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "SparkApplication")
    assert app["spec"]["image"] == f"ghcr.io/fruitlens/fruitlens@{digest}"


def test_fullname_fits_operator_derived_names() -> None:
    long_release = "r" * 53  # the longest release name Helm accepts
    proc = helm_template(release=long_release)
    assert proc.returncode == 0, proc.stderr
    app = next(d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "SparkApplication")
    # "<name>-driver" and "<name>-ui-svc" must stay valid DNS labels (63 characters).
    assert len(app["metadata"]["name"] + "-ui-svc") <= 63
