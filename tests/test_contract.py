"""The contract with a hostile or careless user, in tables: each row is one wrong input and what
fruitlens must answer. Wrong usage is refused before Spark starts, in one line
`fruitlens COMMAND: error: ...` naming the flag, file, line or URI, with exit status 2.

Rows call `cli.main` in-process (fast, no Spark: every refusal here comes first); a few rows are
repeated through the installed console script to check the real exit status.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from fruitlens import cli, config


def refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """stderr of `fruitlens ARGV`, checked to be one `error:` line with exit status 2."""
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.count("\n") == 0, err
    assert err.startswith(f"fruitlens {argv[0]}: error: "), err
    return err


# --- settings: one row per bad value, the same answer through every channel -------------------
# (setting, command, value as typed, what the refusal must say)
BAD_SETTINGS = [
    ("sse", "run", "S3", "--sse 'S3' is not one of kms, s3, none"),
    ("sse", "run", "AES256", "--sse 'AES256' is not one of"),
    ("sse", "run", "aes256", "--sse 'aes256' is not one of"),
    ("sse", "sanitize", "KMS", "--sse 'KMS' is not one of"),
    ("classifier", "run", "svm", "--classifier 'svm' is not one of logreg, mlp"),
    ("batch_size", "run", "0", "--batch-size must be at least 1 (got 0)"),
    ("batch_size", "predict", "-3", "--batch-size must be at least 1"),
    ("batch_size", "run", "2.5", "--batch-size: '2.5' is not a valid int"),
    ("max_pixels", "run", "0", "--max-pixels must be at least 1"),
    ("max_file_bytes", "run", "0", "--max-file-bytes must be at least 1"),
    ("max_file_bytes", "predict", "lots", "--max-file-bytes: 'lots' is not a valid int"),
    ("cv_folds", "train", "1", "--cv-folds must be at least 2"),
    ("min_confidence", "predict", "1.5", "--min-confidence must be at most 1.0"),
    ("min_confidence", "predict", "-0.1", "--min-confidence must be at least 0.0"),
    ("min_confidence", "predict", "nan", "--min-confidence: 'nan' is not a finite number"),
    ("pca_k", "run", "0", "--pca-k must be at least 1"),
    ("pca_k", "train", "4096", "--pca-k must be at most 512"),
    ("pca_max_k", "run", "0", "--pca-max-k must be at least 1"),
    ("pca_variance", "run", "0", "--pca-variance must be above 0.0"),
    ("pca_variance", "run", "1.01", "--pca-variance must be at most 1.0"),
    ("test_fraction", "run", "1", "--test-fraction must be below 1.0"),
    ("image_size", "run", "16", "--image-size must be at least 32"),
    ("days", "retention", "0", "--days must be at least 1"),
    ("umask", "run", "999", "--umask '999' must match"),
    ("umask", "erase", "u=rwx", "--umask 'u=rwx' must match"),
    ("output", "run", "s3a://Fruits/runs/r1", "--output: 'Fruits' is not a valid S3 bucket name"),
    ("input", "predict", "s3a://a/raw", "--input: 'a' is not a valid S3 bucket name"),
    ("model", "predict", "s3a://my_models/v1", "--model: 'my_models' is not a valid S3"),
    ("features", "train", "s3a://x..y/r1", "--features: 'x..y' is not a valid S3"),
    ("bucket", "retention", "Fruits", "--bucket: 'Fruits' is not a valid S3 bucket name"),
    ("region", "run", "us-east-1", "outside the EU"),
    ("spark_conf", "run", "=x", "is not KEY=VALUE"),
    ("overwrite", "run", "maybe", "--overwrite: 'maybe' is not a boolean"),
]


def through_flag(name: str, command: str, value: str) -> config.Config:
    args = cli.build_parser().parse_args([command, f"{config.flag_name(name)}={value}"])
    return config.build_config(command, vars(args), {})


def through_environment(name: str, command: str, value: str) -> config.Config:
    return config.build_config(command, {"config": None}, {config.env_name(name): value})


def through_file(name: str, command: str, value: object, folder: Path) -> config.Config:
    settings = folder / "settings.json"
    settings.write_text(json.dumps({name: value}), encoding="utf-8")
    return config.build_config(command, {"config": str(settings)}, {})


@pytest.mark.parametrize(("name", "command", "value", "message"), BAD_SETTINGS)
def test_a_bad_setting_is_refused_the_same_way_through_every_channel(
    name, command, value, message, tmp_path
):
    raw = [value] if config.Config.__dataclass_fields__[name].metadata.get("repeat") else value
    channels = {
        "file": lambda: through_file(name, command, raw, tmp_path),
        "environment": lambda: through_environment(name, command, value),
    }
    if name != "overwrite":  # a boolean flag takes no value: --overwrite / --no-overwrite
        channels["flag"] = lambda: through_flag(name, command, value)
    for channel, build in channels.items():
        with pytest.raises(config.ConfigError) as refused:
            build()
        assert message in str(refused.value), channel


@pytest.mark.parametrize(("name", "command", "value", "message"), BAD_SETTINGS[:6])
def test_the_cli_refuses_a_bad_setting_in_one_line(name, command, value, message, capsys):
    if name == "batch_size":
        argv = [command, "--input", "in", "--output", "out", config.flag_name(name), value]
    else:
        argv = [command, f"{config.flag_name(name)}={value}"]
    assert message in refusal(capsys, argv)


def test_file_values_of_the_wrong_type_are_refused(tmp_path):
    for name, value in [("batch_size", True), ("batch_size", 8.5), ("pca_variance", [0.9])]:
        with pytest.raises(config.ConfigError, match=config.flag_name(name)):
            through_file(name, "run", value, tmp_path)
    assert through_file("batch_size", "run", 8, tmp_path).batch_size == 8


# --- the --config file itself --------------------------------------------------------------------
def test_a_missing_config_file_is_named(capsys, tmp_path):
    missing = tmp_path / "nope.yaml"
    err = refusal(capsys, ["run", "--config", str(missing)])
    assert f"--config {missing}: cannot be read (No such file or directory)" in err


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("job.json", '{\n  "batch_size": 8,\n  "pca_k": \n}', "line 4 column 1: invalid JSON"),
        ("job.yaml", "batch_size: 8\npca_k: [1,\n", "line 3 column 1: invalid YAML"),
        ("job.yaml", "- a list\n- of things\n", "expected a mapping of settings"),
        ("job.json", '{"pca_kk": 3}', "unknown settings"),
    ],
)
def test_a_malformed_config_file_is_named_with_its_line(name, text, where, capsys, tmp_path):
    settings = tmp_path / name
    settings.write_text(text, encoding="utf-8")
    err = refusal(capsys, ["run", "--config", str(settings)])
    assert str(settings) in err and where in err


# --- usage the parser refuses -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["run", "--sse"], "argument --sse: expected one argument"),
        (["erase", "--pca-k", "3"], "unrecognized arguments: --pca-k 3"),
    ],
)
def test_wrong_flags_are_one_line(argv, message, capsys):
    assert message in refusal(capsys, argv)


# --- inputs and outputs that cannot work together ------------------------------------------------
@pytest.mark.parametrize(
    ("command", "input_part", "output_part"),
    [
        ("run", "images", "images/out"),  # a rerun would read plots/ as a class
        ("run", "images/sub", "images"),
        ("predict", "images", "images/../images/preds"),
        ("sanitize", "images", "images"),
    ],
)
def test_output_inside_input_is_refused(command, input_part, output_part, capsys, tmp_path):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    err = refusal(
        capsys,
        [command, "--input", str(tmp_path / input_part), "--output", str(tmp_path / output_part)],
    )
    assert "must not be inside --input" in err
    assert not (tmp_path / "images" / "out").exists()


def test_s3_output_inside_s3_input_is_refused():
    with pytest.raises(config.ConfigError, match="must not be inside"):
        config.build_config(
            "run", {"config": None, "input": "s3a://fruits/raw", "output": "s3a://fruits/raw/r1"}
        )
    # A sibling prefix that merely starts with the same letters is not inside.
    cfg = config.build_config(
        "run", {"config": None, "input": "s3a://fruits/raw", "output": "s3a://fruits/raw-runs"}
    )
    assert cfg.output == "s3a://fruits/raw-runs"


# --- the real console script: exit status and nothing on stdout ---------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--input", "x", "--output", "y", "--sse", "S3"],
        ["run", "--config", "/nonexistent/job.json"],
        ["retention", "--bucket", "Fruits", "--days", "3"],
        ["run", "--frobnicate"],
    ],
)
def test_console_script_exits_2_with_one_line(argv):
    result = run_cli(*argv, timeout=120)
    assert result.code == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith(f"fruitlens {argv[0]}: error: ")
    assert result.stdout == ""
