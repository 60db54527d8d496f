"""What only a process shows: the console script's exit statuses (0 done, 2 wrong usage before
any JVM starts; 1 for a failed job is in test_reliability_s3.py, where S3 goes away under a
running job, and 130 for Ctrl-C in test_reliability_local.py). The README's `make run` runs in
a terminal in test_report_browser.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import run_cli


def test_help_exits_0_and_wrong_usage_exits_2_with_one_line_before_spark(tmp_path: Path):
    assert run_cli("--help").code == 0
    result = run_cli("run", "--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o"))
    assert result.code == 2
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
    # No JVM was started: Spark's start-up lines (log4j, the jars) never appear.
    assert "log4j" not in result.stderr and "SparkContext" not in result.stderr
    assert not (tmp_path / "o").exists()
    unknown = run_cli("run", "--no-such-flag")
    assert unknown.code == 2 and "unrecognized arguments" in unknown.stderr


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
