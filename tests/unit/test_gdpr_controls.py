"""Residency, transit, retention and log redaction for the data-protection commands (no Spark)."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest

from fruitlens import errors, redact
from fruitlens.commands import retention
from support.cli import invoke
from support.gdpr_scan import FAKE_CREDENTIALS, FAKE_KEY, FAKE_SECRET, FAKE_TOKEN
from support.images import gps_exif_jpeg
from support.paths import REPO
from support.s3 import S3Server


# --- redaction ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "line",
    [
        f"using key {FAKE_KEY} for s3",
        "temporary ASIAFRUITLENSTEST9999 expired",
        f"aws_secret_access_key={FAKE_SECRET}",
        f"fs.s3a.secret.key = {FAKE_SECRET}",
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={FAKE_KEY}%2F20261125%2Feu-west-3&X-Amz-Security-Token={FAKE_TOKEN}"
        "&X-Amz-Signature=0123456789abcdef0123",
        f"headers={{'X-Amz-Security-Token': b'{FAKE_TOKEN}'}}",
    ],
)
def test_redact_removes_keys_secrets_tokens_and_signatures(line, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", FAKE_TOKEN)
    cleaned = redact.redact(line)
    for secret in (FAKE_KEY, FAKE_SECRET, FAKE_TOKEN, "ASIAFRUITLENSTEST9999", "0123456789abcdef"):
        assert secret not in cleaned
    assert redact.MASK in cleaned


def test_filter_redacts_arguments_and_tracebacks(monkeypatch, caplog):
    monkeypatch.setenv("AWS_SESSION_TOKEN", FAKE_TOKEN)
    logger = logging.getLogger("fruitlens.test.redact")
    handler_filter = redact.RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        try:
            raise RuntimeError(f"refused token {FAKE_TOKEN}")
        except RuntimeError:
            logger.exception("call with key %s failed", FAKE_KEY)
    finally:
        caplog.handler.removeFilter(handler_filter)
    text = caplog.text
    assert "call with key" in text and "RuntimeError" in text
    assert FAKE_KEY not in text and FAKE_TOKEN not in text


def sanitize_incoming(
    s3_server: S3Server, bucket: str, output: str, *flags: str, env: dict | None = None
):
    """`fruitlens sanitize` of the bucket's incoming/ prefix (a GPS-tagged photo) to `output`."""
    s3_server.client().put_object(Bucket=bucket, Key="incoming/Apple/gps.jpg", Body=gps_exif_jpeg())
    return invoke(
        "sanitize",
        *flags,
        "--input",
        f"s3a://{bucket}/incoming",
        "--output",
        output,
        env={"FRUITLENS_S3_ENDPOINT": s3_server.endpoint, **(env or {})},
    )


@pytest.mark.s3
def test_debug_logs_of_a_real_s3_session_hold_no_credential(s3_server: S3Server, tmp_path):
    """botocore at DEBUG prints request headers (Authorization, X-Amz-Security-Token)."""
    bucket = s3_server.make_bucket(f"redact-{uuid.uuid4().hex[:8]}")
    result = sanitize_incoming(
        s3_server, bucket, f"s3a://{bucket}/raw", "-v", "-v", env=FAKE_CREDENTIALS
    )
    assert result.code == 0, result.stderr[-3000:]
    assert "botocore" in result.stderr and redact.MASK in result.stderr  # it did log requests
    for secret in (FAKE_KEY, FAKE_SECRET, FAKE_TOKEN):
        assert secret not in result.stdout and secret not in result.stderr


# --- residency and transit on the new commands --------------------------------------------------
COMMANDS = {
    "sanitize": ["--input", "s3a://fruits/in", "--output", "s3a://fruits/out"],
    "erase": ["--output", "s3a://fruits/runs/r1", "--image-id", "0" * 64],
    "retention": ["--bucket", "fruits", "--days", "30"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_non_eu_region_is_refused(command):
    result = invoke(command, *COMMANDS[command], "--region", "us-east-1")
    assert result.code == 2 and "outside the EU" in result.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_plain_http_to_a_remote_endpoint_is_refused(command):
    result = invoke(command, *COMMANDS[command], "--s3-endpoint", "http://10.20.30.40:9000")
    assert result.code == 2 and "plain http" in result.stderr


@pytest.mark.s3
def test_loopback_endpoint_and_recorded_non_eu_reason(s3_server: S3Server, tmp_path):
    bucket = s3_server.make_bucket(f"resid-{uuid.uuid4().hex[:8]}")
    result = sanitize_incoming(
        s3_server,
        bucket,
        str(tmp_path / "clean"),
        "--region",
        "us-east-1",
        "--allow-non-eu-region",
        "DPA ticket 42",
    )
    assert result.code == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "clean" / "_sanitize_report.json").read_text())
    assert report["audit"]["non_eu_reason"] == "DPA ticket 42"
    assert report["audit"]["eu_region"] is False
    assert report["audit"]["custom_endpoint"] == s3_server.endpoint


# --- retention ----------------------------------------------------------------------------------
def iac_rules() -> list[dict]:
    return json.loads((REPO / "k8s" / "aws" / "lifecycle.json").read_text())["Rules"]


def without_id(rule: dict) -> dict:
    return {key: value for key, value in rule.items() if key != "ID"}


def test_cli_rule_has_the_shape_of_the_iac_rule():
    for iac in iac_rules():
        ours = retention.lifecycle_rule(iac["Filter"]["Prefix"], iac["Expiration"]["Days"])
        assert without_id(ours) == without_id(iac)
        assert ours["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


@pytest.mark.s3
def test_retention_sets_the_lifecycle_rule_and_keeps_other_rules(s3_server: S3Server):
    bucket = s3_server.make_bucket(f"retain-{uuid.uuid4().hex[:8]}")
    client = s3_server.client()
    foreign = {
        "ID": "someone-elses",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 400},
    }
    stale = {**iac_rules()[0], "ID": "old-runs-rule", "Expiration": {"Days": 365}}
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [foreign, stale]}
    )
    env = {"FRUITLENS_S3_ENDPOINT": s3_server.endpoint}
    result = invoke(
        "retention",
        "--bucket",
        bucket,
        "--days",
        "30",
        "--prefix",
        "runs",
        "--prefix",
        "raw/",
        env=env,
    )
    assert result.code == 0, result.stderr[-2000:]
    rules = client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    by_prefix = {rule["Filter"]["Prefix"]: rule for rule in rules}
    assert set(by_prefix) == {"logs/", "runs/", "raw/"}  # the stale runs/ rule was replaced
    assert by_prefix["logs/"]["ID"] == "someone-elses"
    for prefix in ("runs/", "raw/"):
        rule = by_prefix[prefix]
        assert rule["Expiration"] == {"Days": 30}
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
        assert rule["Status"] == "Enabled"
    assert without_id(by_prefix["runs/"]) == without_id(iac_rules()[0])  # same rule as the IaC


def test_retention_refuses_bad_input(tmp_path: Path):
    assert "--days" in invoke("retention", "--bucket", "fruits").stderr
    with pytest.raises(errors.UsageError):
        retention.lifecycle_rules([""], 30)
    with pytest.raises(errors.UsageError):
        retention.lifecycle_rules(["runs/"], 0)
