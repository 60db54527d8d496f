"""End to end on a real cluster: the whole path on a kind cluster (image, Spark Operator 2.5.2,
moto S3, the job); runs only where a Docker engine and kind exist, as `make kind-e2e` does."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from support.deploy.harness import ROOT, have_docker_engine, tools_bin

pytestmark = pytest.mark.slow


def test_make_kind_e2e_without_docker_reports_skip() -> None:
    """Where Docker cannot run, the target says so and succeeds (it must not break `make`)."""
    if have_docker_engine():
        pytest.skip("a Docker engine is available: the real run below covers the target")
    make = shutil.which("make")
    assert make
    proc = subprocess.run(
        [make, "--no-print-directory", "kind-e2e"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "skipped: no Docker engine"


def test_kind_end_to_end() -> None:
    if not have_docker_engine():
        pytest.skip("no Docker engine")
    if not (shutil.which("kind") or (tools_bin() / "kind").exists()) and not shutil.which("go"):
        pytest.skip("kind not installed and no Go to build it")
    env = {**os.environ, "PATH": f"{tools_bin()}:{os.environ['PATH']}"}
    proc = subprocess.run(
        ["make", "--no-print-directory", "kind-e2e"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "kind e2e passed" in proc.stdout
