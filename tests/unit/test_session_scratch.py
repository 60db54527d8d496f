"""A local driver's scratch folder (spark.local.dir): one per process, and what a killed one
leaves is removed by the next local session. The kill itself is in
tests/e2e/test_reliability_local.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fruitlens import paths, session
from fruitlens.config import Config

# The jars already fetched into the real cache: the tests below move the cache elsewhere.
JARS = Config(jars_dir=str(paths.cache_dir() / "jars"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FRUITLENS_CACHE", str(tmp_path))
    return tmp_path / "spark-local"


def ended_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_each_driver_process_has_its_own_scratch_folder(cache: Path):
    local_dir = session.spark_settings(JARS)["spark.local.dir"]
    assert local_dir == str(cache / f"{socket.gethostname()}-{os.getpid()}")
    assert session.scratch_dir() == Path(local_dir)


def test_only_the_folders_of_this_host_s_ended_drivers_are_removed(cache: Path):
    host = socket.gethostname()
    ended, running = cache / f"{host}-{ended_pid()}", session.scratch_dir()
    elsewhere = cache / f"another-host-{ended_pid()}"
    not_a_driver = cache / f"{host}-notes"
    for folder in (ended, running, elsewhere, not_a_driver):
        (folder / "blockmgr-1").mkdir(parents=True)
        (folder / "blockmgr-1" / "shuffle_0_0_0.data").write_bytes(b"derived rows")
    assert session.remove_scratch_of_ended_drivers() == [ended]
    assert not ended.exists()
    assert running.is_dir() and elsewhere.is_dir() and not_a_driver.is_dir()
    assert session.remove_scratch_of_ended_drivers() == []  # nothing else to remove


def test_no_scratch_folder_yet_is_nothing_to_remove(cache: Path):
    assert not cache.exists()
    assert session.remove_scratch_of_ended_drivers() == []
