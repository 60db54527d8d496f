"""The contract with a hostile or careless user, in tables: each row is one wrong input and what
fruitlens must answer. Wrong usage is refused before Spark starts, in one line
`fruitlens COMMAND: error: ...` naming the flag, file, line or URI, with exit status 2.

Rows call `cli.main` in-process through `support.cli.invoke` (fast, no Spark: every refusal
here comes first; what main() sets for the process is restored after each); a few rows are
repeated through the installed console script to check the real exit status.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fruitlens import cli, config
from support.cli import invoke
from support.naming import CLASS_RULE


def refusal(argv: list[str]) -> str:
    """stderr of `fruitlens ARGV`, checked to be one `error:` line with exit status 2."""
    result = invoke(*argv)
    err = result.stderr.strip()
    assert result.code == 2, err
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
def test_the_cli_refuses_a_bad_setting_in_one_line(name, command, value, message):
    if name == "batch_size":
        argv = [command, "--input", "in", "--output", "out", config.flag_name(name), value]
    else:
        argv = [command, f"{config.flag_name(name)}={value}"]
    assert message in refusal(argv)


def test_file_values_of_the_wrong_type_are_refused(tmp_path):
    for name, value in [("batch_size", True), ("batch_size", 8.5), ("pca_variance", [0.9])]:
        with pytest.raises(config.ConfigError, match=config.flag_name(name)):
            through_file(name, "run", value, tmp_path)
    assert through_file("batch_size", "run", 8, tmp_path).batch_size == 8
    assert through_file("batch_size", "run", "auto", tmp_path).batch_size == "auto"


# --- the --config file itself --------------------------------------------------------------------
def test_a_missing_config_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    err = refusal(["run", "--config", str(missing)])
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
def test_a_malformed_config_file_is_named_with_its_line(name, text, where, tmp_path):
    settings = tmp_path / name
    settings.write_text(text, encoding="utf-8")
    err = refusal(["run", "--config", str(settings)])
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
def test_wrong_flags_are_one_line(argv, message):
    assert message in refusal(argv)


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
def test_output_inside_input_is_refused(command, input_part, output_part, tmp_path):
    (tmp_path / "images" / "sub").mkdir(parents=True)
    err = refusal(
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


# --- locations a run.json (or a writer) names: inside the run, or refused ----------------------
RUN = "/data/runs/r1"
# (stored value, the run.json's recorded output, where it must resolve; None: refused)
STORED_PATHS = [
    ("features@2", None, f"{RUN}/features@2"),
    ("plots/pca_scatter.png", None, f"{RUN}/plots/pca_scatter.png"),
    ("./pca", None, f"{RUN}/pca"),
    # Older manifests: absolute or working-directory-relative under the recorded output.
    (f"{RUN}/features", RUN, f"{RUN}/features"),
    ("/elsewhere/run/features@3", "/elsewhere/run", f"{RUN}/features@3"),  # a copied run
    ("out/small/pca", "out/small", f"{RUN}/pca"),  # `erase` from another directory
    ("s3a://fruits/runs/r1/features", "s3a://fruits/runs/r1", f"{RUN}/features"),
    # Outside the run: refused, never read for rewriting nor deleted.
    ("../r2/features", None, None),
    ("features/../../r2/features", None, None),
    ("/data/runs/r2/features", "/data/runs/r2-other", None),
    ("/data/runs/r1-copy/features", None, None),
    ("s3a://other/features", None, None),
    ("", None, None),
    (".", None, None),
]


@pytest.mark.parametrize(("stored", "recorded", "expected"), STORED_PATHS)
def test_a_stored_location_resolves_inside_its_run_or_is_refused(stored, recorded, expected):
    from fruitlens.outputs import commit as write

    if expected is None:
        with pytest.raises(write.ManifestError, match="refused"):
            write.resolve_stored(RUN, stored, recorded)
    else:
        assert write.resolve_stored(RUN, stored, recorded) == expected


def test_a_link_out_of_the_run_is_refused(tmp_path):
    from fruitlens.outputs import commit as write

    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    run.mkdir()
    elsewhere.mkdir()
    (run / "features").symlink_to(elsewhere)
    with pytest.raises(write.ManifestError, match="leads outside"):
        write.resolve_stored(str(run), "features")


# --- secrets: redacted in every document, whatever key or channel -----------------------------
@pytest.mark.parametrize(
    ("document", "secret"),
    [
        ({"spark_conf": ["spark.hadoop.fs.s3a.secret.key=FAKE-SECRET-1"]}, "FAKE-SECRET-1"),
        ({"spark_conf": ["spark.hadoop.fs.s3a.access.key=AKIAFAKEFAKEFAKE1"]}, "AKIAFAKEFAKEFAKE1"),
        ({"spark_conf": ["spark.hadoop.fs.s3a.session.token=FAKE-TOKEN-2"]}, "FAKE-TOKEN-2"),
        ({"spark_conf": ["spark.ssl.keyStorePassword=FAKE-PASS-3"]}, "FAKE-PASS-3"),
        ({"nested": {"aws_session_token": "FAKE-TOKEN-4"}}, "FAKE-TOKEN-4"),
        ({"nested": [{"db_password": "FAKE-PASS-5"}]}, "FAKE-PASS-5"),
        ({"note": "called with secret_key=FAKE-SECRET-6 by mistake"}, "FAKE-SECRET-6"),
        ({"url": "https://b.s3/x?X-Amz-Signature=FAKE-SIG-7&a=1"}, "FAKE-SIG-7"),
    ],
)
def test_secret_looking_values_are_redacted_in_documents(document, secret):
    from fruitlens import redact
    from fruitlens.outputs import commit as write

    assert secret not in json.dumps(redact.scrub(document))
    assert secret not in write.json_text(document)
    assert redact.MASK in write.json_text(document)


def test_secrets_given_through_any_channel_leave_the_config_document(tmp_path):
    secret = "spark.hadoop.fs.s3a.secret.key=FAKE-CHANNEL-SECRET"
    settings = tmp_path / "job.json"
    settings.write_text(json.dumps({"spark_conf": [secret]}))
    built = [
        through_flag("spark_conf", "run", secret),
        through_environment("spark_conf", "run", secret),
        config.build_config("run", {"config": str(settings)}, {}),
    ]
    for cfg in built:
        assert cfg.spark_conf == [secret]  # Spark still gets the value
        public = json.dumps(cfg.public_dict())
        assert "FAKE-CHANNEL-SECRET" not in public and "fs.s3a.secret.key" in public


# --- files: what each bad file is rejected as (decode level, no Spark) -------------------------
def encoded(fmt: str, mode: str = "RGB", **options: object) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, (40, 40), 120 if mode == "L" else (200, 60, 30)).save(
        buffer, format=fmt, **options
    )
    return buffer.getvalue()


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n"
# (case, bytes, reason: None when the file must be processed)
FILES = [
    ("jpeg", lambda: encoded("JPEG"), None),
    ("png", lambda: encoded("PNG"), None),
    ("webp", lambda: encoded("WEBP"), None),
    ("gif", lambda: encoded("GIF", "L"), None),
    ("bmp", lambda: encoded("BMP"), None),
    ("tiff", lambda: encoded("TIFF"), None),
    ("eps, which would run Ghostscript", lambda: EPS, "unsupported_format"),
    ("pcx", lambda: encoded("PCX"), "unsupported_format"),
    ("ico", lambda: encoded("ICO"), "unsupported_format"),
    ("ppm", lambda: encoded("PPM"), "unsupported_format"),
    ("text", lambda: b"just some words\n" * 10, "not_an_image"),
    ("empty", lambda: b"", "empty_file"),
    ("truncated jpeg", lambda: encoded("JPEG")[:200], "corrupt_image"),
]


@pytest.mark.parametrize(("case", "make", "reason"), FILES, ids=[row[0] for row in FILES])
def test_each_file_is_decoded_or_rejected_with_a_stable_reason(case, make, reason):
    from fruitlens.pipeline import decode

    first, second = decode.decode(make(), 32, 25_000_000), decode.decode(make(), 32, 25_000_000)
    assert first.reason == reason, first.detail
    # Identical runs give identical rejections: no memory address in the detail.
    assert first.detail == second.detail and " at 0x" not in first.detail
    if reason is None:
        assert first.pixels.shape == (32, 32, 3)


# --- the README and the CLI agree --------------------------------------------------------------
PLACEHOLDERS = {
    "DIR": "/opt/jars",
    "VALUES": "values.yaml",
    "FILE": "manifest.yaml",
    "ID": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "P": "s3a://fruits/raw/Apple/1.jpg",
    "B": "fruits",
    "N": "30",
    "RUN": "s3a://fruits/runs/r1",
    "RUN1": "s3a://fruits/runs/r1",
    "RUN2": "s3a://fruits/runs/r2",
}


def readme_commands() -> list[str]:
    """Every `fruitlens ...` command the README shows: code blocks (with their continuation
    lines), inline code, and the commands table (placeholders filled, [optional] parts kept,
    the first of (a | b) alternatives taken)."""
    import re

    from support.paths import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    # A command with its flags or an uppercase placeholder (`fruitlens report RUN`), not the
    # summary's "fruitlens run finished".
    found = re.findall(r"^\s*(?:\.venv/bin/)?(fruitlens [a-z]+ [-\[(A-Z][^\n`]*)$", text, re.M)
    found += re.findall(r"`(?:\.venv/bin/)?(fruitlens [a-z]+ [-\[(A-Z][^`]*)`", text)
    commands = []
    for line in found:
        line = re.sub(r"\(([^|)]*?)\s*\\?\|[^)]*\)…?", r"\1", line)  # (a | b)… -> a
        line = line.replace("[", "").replace("]", "").replace("…", "")
        # --input URI, --output URI: one location per flag, so that none is inside another.
        line = re.sub(r"--([a-z-]+) (?:URI|RUN)\b", r"--\1 s3a://fruits/\1", line)
        line = re.sub(r"\b[A-Z]+\b", lambda m: PLACEHOLDERS.get(m.group(0), m.group(0)), line)
        commands.append(line.strip())
    return commands


def test_the_readme_shows_commands_of_every_kind():
    shown = {command.split()[1] for command in readme_commands()}
    assert shown >= {*cli.COMMANDS, "submit"}


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_parses_and_its_settings_validate(command):
    import shlex

    argv = shlex.split(command)[1:]
    args = cli.build_parser().parse_args(argv)  # SystemExit(2) on any flag the CLI lacks
    if args.command != "submit":
        config.build_config(args.command, vars(args), {})


# Settings whose example needs another setting beside it (validated together).
COMPANIONS = {
    "sse": ["--sse-kms-key", "arn:aws:kms:eu-west-3:1:key/x"],
    "s3_anonymous": ["--s3-endpoint", "http://127.0.0.1:9000"],
}


@pytest.mark.parametrize("command", [*cli.COMMANDS])
def test_every_flag_example_in_the_help_is_accepted(command):
    """`Example: --pca-k 50` in a flag's help is a value the flag takes."""
    import re
    import shlex

    for item in config.fields_for(command):
        example = item.metadata["help"].rsplit("Example: ", 1)[1]
        if not example.startswith("--"):
            continue
        argv = [command, *shlex.split(re.sub(r"\.\.\.", "", example))]
        argv += COMPANIONS.get(item.name, [])
        args = cli.build_parser().parse_args(argv)
        config.build_config(command, vars(args), {})


# --- inputs a run cannot use: refused from the listing, before Spark, leaving no output --------
def tree(root: Path, files: list[str]) -> Path:
    for relative in files:
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\xff\xd8 a photo, as far as the listing knows")
    return root


@pytest.mark.parametrize(
    ("files", "flags", "message"),
    [
        (["Apple/1.jpg"], [], "holds 1 image file(s) (and 0 hidden); PCA and a classifier need"),
        ([".Apple/1.jpg", "_B/2.jpg", "C/3.jpg"], [], "holds 1 image file(s) (and 2 hidden)"),
        (
            ["Training/Apple/1.jpg", "Training/Apple/2.jpg", "Test/Apple/3.jpg"],
            [],
            "has 1 class folder(s) to train on (Apple); a classifier needs at least 2",
        ),
        (["Apple/1.jpg", "Apple/2.jpg"], ["--test-fraction", "0.5"], "has 1 class folder(s)"),
        (
            ["Training/A/1.jpg", "Training/B/2.jpg", "Test/A/3.jpg", "Test/B/4.jpg"],
            ["--pca-k", "5"],
            "--pca-k 5 is not below the 2 labelled images that PCA is fitted on: choose at most 1",
        ),
    ],
)
def test_a_run_that_cannot_work_is_refused_from_the_listing(files, flags, message, tmp_path):
    source = tree(tmp_path / "images", files)
    output = tmp_path / "out"
    err = refusal(["run", "--input", str(source), "--output", str(output), *flags])
    assert message in err
    assert not output.exists()  # nothing blocks the next run


def test_a_run_on_one_flat_class_without_training_is_not_refused():
    from fruitlens.commands import preflight
    from fruitlens.pipeline import images

    listed = images.Listed(
        max_file_bytes=1, readable={f"file:/in/Apple/{i}.jpg": 1 for i in range(3)}
    )
    listing = preflight.InputListing(classes={None: {"Apple"}}, listed=listed)
    preflight.require_trainable(config.build_config("run", {"config": None}, {}), listing)
    assert images.class_rule("Apple/1.jpg") == ("Apple", None, None)


# --- the class rule: the first folder under the root, or under Training|Test ------------------
@pytest.mark.parametrize(("relative", "expected"), CLASS_RULE)
def test_the_class_rule(relative, expected):
    from fruitlens.pipeline import images

    assert images.class_rule(relative) == expected


# --- S3 locations that cannot work: named, exit 2, before Spark --------------------------------
@pytest.mark.s3
def test_missing_buckets_and_unreachable_endpoints_are_named(s3_server, tmp_path):
    from support.net import free_port

    s3_server.make_bucket("hardening-in")
    for key in ("raw/Apple/1.jpg", "raw/Pear/2.jpg"):
        s3_server.client().put_object(Bucket="hardening-in", Key=key, Body=b"x")
    endpoint = ["--s3-endpoint", s3_server.endpoint]
    err = refusal(["run", "--input", "s3a://no-such-bucket/raw", "--output", "o", *endpoint])
    assert "s3a://no-such-bucket/raw: bucket 'no-such-bucket' does not exist" in err
    out = "s3a://no-such-out/runs/r1"
    err = refusal(["run", "--input", "s3a://hardening-in/raw", "--output", out, *endpoint])
    assert f"{out}: bucket 'no-such-out' does not exist" in err
    closed = f"http://127.0.0.1:{free_port()}"
    err = refusal(["run", "--input", "s3a://hardening-in/raw", "--output", str(tmp_path),
                   "--s3-endpoint", closed])  # fmt: skip
    assert f"S3 endpoint {closed} cannot be reached" in err


@pytest.mark.parametrize(
    ("output", "uri"),
    [
        ("out/small", "out/small/predictions"),  # a relative --output, as typed
        ("/data/runs/r1", "/data/runs/r1/predictions"),
        ("s3a://fruits/runs/r1", "s3a://fruits/runs/r1/predictions"),
    ],
)
def test_a_writer_records_locations_relative_to_the_run(output, uri):
    from fruitlens.outputs import commit as write

    assert write.stored_name(output, uri) == "predictions"
