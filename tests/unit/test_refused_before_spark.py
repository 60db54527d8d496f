"""Wrong usage stops with one line and exit 2 before any Spark work: run in this process, the
check is direct — no SparkContext exists after the command that did not exist before it (the
console script's own exit status is checked once, in tests/e2e/test_cli.py)."""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import pytest

from support.cli import CliResult, invoke
from support.images import rgb_jpeg

FLAGS = ("--weights", "seeded:0", "--pca-k", "2", "--no-plots")


def refused(*args: str, env: dict[str, str] | None = None) -> CliResult:
    from pyspark import SparkContext

    before = SparkContext._active_spark_context
    result = invoke(*args, env=env)
    assert SparkContext._active_spark_context is before, "a Spark session was started"
    assert result.code == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    return result


def two_classes(source: Path) -> Path:
    """The smallest input that passes every check made from the listing (two images of each of
    two classes), so that the refusal under test is the one that stops the run."""
    for index, label in enumerate("AABB"):
        (source / label).mkdir(parents=True, exist_ok=True)
        (source / label / f"{index}.jpg").write_bytes(rgb_jpeg((60 * index, 90, 30)))
    return source


def test_missing_input(tmp_path: Path):
    result = refused("run", "--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o"))
    assert "does not exist" in result.stderr


def test_empty_input(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = refused("run", "--input", str(tmp_path / "empty"), "--output", str(tmp_path / "o"))
    assert "is empty" in result.stderr


def test_an_input_that_is_a_single_file(tmp_path: Path):
    single = tmp_path / "one.jpg"
    single.write_bytes(rgb_jpeg())
    result = refused("run", "--input", str(single), "--output", str(tmp_path / "o"), *FLAGS)
    assert "is empty or is not a folder" in result.stderr
    assert not (tmp_path / "o").exists()


def test_a_symlink_loop(tmp_path: Path):
    root = tmp_path / "in"
    (root / "Loop" / "Inner").mkdir(parents=True)
    (root / "Loop" / "real.jpg").write_bytes(rgb_jpeg())
    (root / "Loop" / "Inner" / "back").symlink_to(root / "Loop", target_is_directory=True)
    result = refused("run", "--input", str(root), "--output", str(tmp_path / "o"), *FLAGS)
    assert "symbolic link loop" in result.stderr and "Inner/back" in result.stderr
    assert not (tmp_path / "o").exists()


def test_an_output_left_by_a_failed_fresh_run_needs_overwrite(tmp_path: Path):
    source = two_classes(tmp_path / "in")
    output = tmp_path / "o"
    (output / "features" / "_temporary").mkdir(parents=True)
    result = refused("run", "--input", str(source), "--output", str(output), *FLAGS)
    assert "no run.json" in result.stderr and "--overwrite" in result.stderr


def test_offline_imagenet_says_how_to_pass_a_file(tmp_path: Path):
    result = refused(
        "run",
        "--input",
        str(two_classes(tmp_path / "in")),
        "--output",
        str(tmp_path / "o"),
        env={"KERAS_HOME": str(tmp_path / "keras")},
    )
    assert "--weights /path/to/" in result.stderr


def test_imagenet_weights_in_keras_s_cache_are_used_without_a_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The file Keras (or the image) put in $KERAS_HOME/models is taken once its MD5 matches;
    the URL points nowhere, so a download would fail. A stand-in file and its MD5 replace
    ImageNet's 58 MB."""
    from fruitlens import weights

    cached = tmp_path / "keras" / "models" / weights.IMAGENET_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stand-in for the ImageNet file\n")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(weights, "IMAGENET_MD5", hashlib.md5(cached.read_bytes()).hexdigest())
    monkeypatch.setattr(weights, "IMAGENET_URL", "http://127.0.0.1:9/nowhere.h5")
    resolved = weights.resolve("imagenet", fetch=None)
    assert resolved.local_path == cached
    # A file that does not hash as pinned is not used: it is fetched again, which fails here.
    cached.write_bytes(b"truncated")
    with pytest.raises(weights.WeightsError, match="--weights /path/to/"):
        weights.resolve("imagenet", fetch=None)


@pytest.mark.s3
def test_missing_or_empty_input_prefix_on_s3(s3_server, tmp_path: Path):
    bucket = s3_server.make_bucket("refusals")
    s3_server.client().put_object(Bucket=bucket, Key="hollow/", Body=b"")
    for prefix in ("nothing-here", "hollow"):  # no key at all; only a "folder/" marker
        result = refused(
            "run",
            "--input",
            f"s3a://{bucket}/{prefix}",
            "--output",
            f"s3a://{bucket}/runs/{prefix}",
            *FLAGS,
            env={"FRUITLENS_S3_ENDPOINT": s3_server.endpoint},
        )
        assert f"input s3a://{bucket}/{prefix}" in result.stderr


@pytest.mark.s3
def test_a_verbose_command_leaves_the_next_one_in_the_process_quiet(s3_server, monkeypatch):
    """main() exports the verbosity for its Python workers, and FRUITLENS_VERBOSE is also the
    setting's variable: a -v -v command run in this process must not make the next one verbose
    (pytest-xdist puts test files that do both in one worker). botocore logs every S3 request
    at DEBUG, so a verbose listing of the input cannot be silent."""
    monkeypatch.delenv("FRUITLENS_VERBOSE", raising=False)  # as in a worker's first command
    bucket = s3_server.make_bucket("verbosity")
    run = ("run", "--input", f"s3a://{bucket}/none", "--output", f"s3a://{bucket}/o", *FLAGS)
    endpoint = {"FRUITLENS_S3_ENDPOINT": s3_server.endpoint}
    assert "DEBUG botocore" in invoke(*run, "-v", "-v", env=endpoint).stderr
    refused(*run, env=endpoint)


def test_a_command_in_this_process_leaves_no_setting_of_its_own_behind(tmp_path: Path):
    """main() sets the umask, the environment its workers inherit, the loggers' levels and
    handlers and where Python warnings go, for the whole process. Run in-process, the next test
    in this worker must find none of it: a handler left on a closed stream broke the log lines
    of the tests after it, and a umask of 077 would reach the session's JVM."""

    def state() -> tuple[object, ...]:
        umask = os.umask(0o022)
        os.umask(umask)
        loggers = ("", "fruitlens", "py4j", "botocore")
        levels = tuple(logging.getLogger(name).level for name in loggers)
        return (
            umask,
            dict(os.environ),
            levels,
            logging.getLogger().handlers[:],
            warnings.showwarning,
        )

    before = state()
    source = two_classes(tmp_path / "in")
    output = tmp_path / "o"
    output.mkdir()
    (output / "unrelated.txt").write_text("x")  # refused after main() set everything up
    argv = ("run", "--input", str(source), "--output", str(output), "--umask", "0077", *FLAGS)
    result = invoke(*argv, "-v", "-v")  # -v -v: DEBUG lines before the refusal
    assert result.code == 2 and "pass --overwrite" in result.stderr, result.stderr
    assert state() == before
