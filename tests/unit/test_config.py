"""The configuration object: precedence, validation, and the GDPR guards that need no data."""

from __future__ import annotations

import dataclasses
import json
import runpy

import pytest

from fruitlens import cli, config
from support.cli import invoke
from support.paths import REPO


def build(command: str = "run", environ: dict[str, str] | None = None, **flags: object):
    return config.build_config(command, {"config": None, **flags}, environ or {})


def test_flags_beat_environment_beat_file(tmp_path):
    settings = tmp_path / "job.json"
    settings.write_text(json.dumps({"batch_size": 8, "pca_k": 5, "weights": "seeded:3"}))
    cfg = build(
        environ={"FRUITLENS_PCA_K": "7", "FRUITLENS_WEIGHTS": "seeded:2"},
        config=str(settings),
        weights="seeded:1",
    )
    assert cfg.weights == "seeded:1"  # flag
    assert cfg.pca_k == 7  # environment over file
    assert cfg.batch_size == 8  # file over default
    assert cfg.pca_variance == 0.95  # default


def test_yaml_file_and_booleans_from_environment(tmp_path):
    settings = tmp_path / "job.yaml"
    settings.write_text("image-size: 64\noverwrite: true\n")
    cfg = build(environ={"FRUITLENS_PSEUDONYMIZE": "yes"}, config=str(settings))
    assert cfg.image_size == 64 and cfg.overwrite and cfg.pseudonymize


def test_unknown_setting_in_file_is_an_error(tmp_path):
    settings = tmp_path / "job.json"
    settings.write_text(json.dumps({"pca_kk": 3}))
    with pytest.raises(config.ConfigError, match="pca_kk"):
        build(config=str(settings))


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-2", "eu-central-2", "ap-south-1"])
def test_regions_outside_the_eu_are_refused(region):
    with pytest.raises(config.ConfigError, match="outside the EU"):
        build(region=region)


def test_non_eu_region_with_a_reason_is_allowed_and_kept():
    cfg = build(region="us-east-1", allow_non_eu_region="DPA ticket 42")
    assert cfg.public_dict()["allow_non_eu_region"] == "DPA ticket 42"


@pytest.mark.parametrize(
    "endpoint", ["http://s3.example.com", "http://10.0.0.5:9000", "ftp://127.0.0.1"]
)
def test_plain_http_to_a_remote_endpoint_is_refused(endpoint):
    with pytest.raises(config.ConfigError):
        build(s3_endpoint=endpoint)


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:9000", "http://localhost:1234", "http://[::1]:9", "https://s3.example.com"],
)
def test_loopback_http_and_any_https_are_allowed(endpoint):
    assert build(s3_endpoint=endpoint).s3_endpoint == endpoint


def test_encryption_defaults_to_sse_s3_and_kms_needs_a_key():
    assert build().effective_sse == "s3"
    assert build(sse_kms_key="arn:aws:kms:eu-west-3:1:key/x").effective_sse == "kms"
    with pytest.raises(config.ConfigError, match="sse-kms-key"):
        build(sse="kms")


def test_every_flag_of_every_command_has_an_example():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    assert set(subparsers) >= {"run", "train", "evaluate", "predict"}
    for name, sub in subparsers.items():
        assert "Example:" in (sub.epilog or ""), name
        for action in sub._actions:
            if action.option_strings and action.dest not in {"help"}:
                assert "Example" in (action.help or ""), f"{name} {action.option_strings}"


def test_help_runs_for_every_command():
    result = invoke("--help")
    assert result.code == 0 and "fruitlens run" in result.stdout
    for command in ("run", "train", "evaluate", "predict", "jars"):
        result = invoke(command, "--help")
        assert result.code == 0, result.stderr
        assert "Example:" in result.stdout


def test_bad_region_stops_the_cli_with_one_line(tmp_path):
    result = invoke(
        "run", "--input", str(tmp_path), "--output", str(tmp_path / "o"), "--region", "us-east-1"
    )
    assert result.code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "outside the EU" in result.stderr


def test_plain_http_to_a_cluster_store_needs_a_recorded_reason():
    cfg = build(s3_endpoint="http://s3.fruitlens.svc:5000", allow_plain_http="kind test cluster")
    assert cfg.public_dict()["allow_plain_http"] == "kind test cluster"


def test_unsigned_requests_only_go_to_a_custom_endpoint():
    with pytest.raises(config.ConfigError, match="never"):
        build(s3_anonymous=True)
    assert build(s3_anonymous=True, s3_endpoint="http://127.0.0.1:9").s3_anonymous


def test_readme_settings_table_is_generated_from_config():
    """`python hack/settings_table.py` prints it: paste it into README.md after a change."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    tool = runpy.run_path(str(REPO / "hack" / "settings_table.py"))
    assert tool["table"]() in readme
    for item in dataclasses.fields(config.Config):
        assert f"`{config.env_name(item.name)}`" in readme, item.name


def test_credentials_provider_reaches_s3a_and_excludes_anonymous():
    from fruitlens import session

    provider = "software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider"
    cfg = build(s3_credentials_provider=provider)
    assert session.s3a_settings(cfg)["spark.hadoop.fs.s3a.aws.credentials.provider"] == provider
    assert "spark.hadoop.fs.s3a.aws.credentials.provider" not in session.s3a_settings(build())
    with pytest.raises(config.ConfigError, match="exclude each other"):
        build(s3_anonymous=True, s3_endpoint="http://127.0.0.1:9", s3_credentials_provider=provider)


def test_a_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(
        config.ConfigError, match=r"--config .*job.yaml: cannot be read \(No such file"
    ):
        build(config=str(tmp_path / "job.yaml"))


def test_local_paths_are_made_absolute_once_and_uris_kept(tmp_path, monkeypatch):
    # Spark's JVM and Python each resolve a relative path against their own working directory.
    monkeypatch.chdir(tmp_path)
    flags = {"input": "images", "output": "s3a://fruits/runs/r1"}
    cfg = build(**flags)
    assert cfg.input == str(tmp_path / "images") and cfg.output == "s3a://fruits/runs/r1"
    cfg = build(input="file:/data/in", output="../o")
    assert cfg.input == "file:/data/in" and cfg.output == str(tmp_path.parent / "o")
