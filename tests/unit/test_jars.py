"""The one jar lock: it fits the installed pyspark, and fetching honours its checksums.

Maven Central is stood in for by the file_server fixture, a folder served over HTTP on loopback
and laid out as a Maven repository; the jars are small files whose sha256 the test lock pins.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pooch
import pytest

from fruitlens import jars


def test_the_lock_fits_the_installed_pyspark() -> None:
    locked = jars.read_lock()
    assert {jar.artifact for jar in locked} == {"hadoop-aws", "bundle", "spark-hadoop-cloud_2.13"}
    jars.check_lock_fits_spark(locked, jars.spark_version(), jars.hadoop_version())


@pytest.mark.parametrize(
    ("spark", "hadoop", "message"),
    [("4.0.4", "3.4.2", "hadoop-aws 3.4.1 but pyspark 4.0.4 carries Hadoop 3.4.2"),
     ("4.1.0", "3.4.1", "spark-hadoop-cloud 4.0.2, not of pyspark 4.1.0's line")],
)  # fmt: skip
def test_a_lock_that_does_not_fit_is_refused(spark: str, hadoop: str, message: str) -> None:
    with pytest.raises(jars.JarError, match=message):
        jars.check_lock_fits_spark(jars.read_lock(), spark, hadoop)


def _served_jar(server: Any, tmp_path: Path, body: bytes, locked: bytes) -> Path:
    path = "org/example/demo/1.0/demo-1.0.jar"
    (server.root / path).parent.mkdir(parents=True)
    (server.root / path).write_bytes(body)
    lock = tmp_path / "jars.lock"
    lock.write_text(f"# test lock\n{hashlib.sha256(locked).hexdigest()}  {path}\n")
    return lock


def test_fetch_downloads_once_and_verifies_each_time(file_server: Any, tmp_path: Path) -> None:
    lock = _served_jar(file_server, tmp_path, b"jar bytes", locked=b"jar bytes")
    folder = tmp_path / "jars"
    [jar] = jars.fetch_locked(jars.read_lock(lock), folder, file_server.url)
    assert jar == folder / "demo-1.0.jar" and jar.read_bytes() == b"jar bytes"
    assert jars.fetch_locked(jars.read_lock(lock), folder, file_server.url) == [jar]
    assert len(file_server.requested) == 1, "a verified jar is not fetched again"
    # A jar changed in the cache no longer matches the lock: it is fetched again (the size
    # differs, so the record of its last check does not spare it the hashing).
    jar.write_bytes(b"tampered")
    jars.fetch_locked(jars.read_lock(lock), folder, file_server.url)
    assert jar.read_bytes() == b"jar bytes" and len(file_server.requested) == 2


def test_a_jar_that_does_not_match_the_lock_is_refused(
    file_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = _served_jar(file_server, tmp_path, b"other bytes", locked=b"jar bytes")
    folder = tmp_path / "jars"
    # pooch's pauses between attempts, recorded instead of slept. pooch.core's own name for the
    # time module is replaced, not time.sleep: this process's other threads (the session's)
    # sleep too, and a process-wide patch recorded their naps as well.
    waits: list[float] = []
    monkeypatch.setattr(pooch.core, "time", SimpleNamespace(sleep=waits.append))
    with pytest.raises(jars.JarError, match=r"demo-1\.0\.jar .* sha256 is not the locked one"):
        jars.fetch_locked(jars.read_lock(lock), folder, file_server.url)
    assert not (folder / "demo-1.0.jar").exists()
    # A mismatch may be a torn transfer: fetched three times, 1 s and 2 s apart, then refused.
    assert len(file_server.requested) == 3 and waits == [1, 2]


def test_a_malformed_lock_line_is_named(tmp_path: Path) -> None:
    lock = tmp_path / "jars.lock"
    lock.write_text("abc  org/x.jar\n")
    with pytest.raises(jars.JarError, match=r"jars.lock:1: expected"):
        jars.read_lock(lock)
