"""The one jar lock: it fits the installed pyspark, and fetching honours its checksums; and
fruitlens's JVM reader, compiled once per source, compiler and Spark.

Maven Central is stood in for by the file_server fixture, a folder served over HTTP on loopback
and laid out as a Maven repository; the jars are small files whose sha256 the test lock pins.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
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


# --- fruitlens's JVM reader, compiled by the pinned ECJ --------------------------------------
def test_the_reader_jar_is_named_after_its_sources_the_compiler_and_spark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fruitlens import reader_jar

    named = reader_jar.jar_name("4.0.4")
    assert named == reader_jar.jar_name("4.0.4") != reader_jar.jar_name("4.0.5")
    sources = tmp_path / "java"
    shutil.copytree(reader_jar.SOURCES, sources)
    monkeypatch.setattr(reader_jar, "SOURCES", sources)
    assert reader_jar.jar_name("4.0.4") == named
    [source] = sources.rglob("ReadListedFiles.java")
    source.write_text(source.read_text() + "\n// changed\n")
    assert reader_jar.jar_name("4.0.4") != named
    # The image build reads Spark's version off its jars folder, as pyspark's own jars have it.
    assert reader_jar.spark_version_of(jars.spark_jar("spark-core_2.13").parent) == (
        jars.spark_version()
    )


def test_the_reader_jar_is_compiled_once_into_the_folder(tmp_path: Path) -> None:
    jar = jars.ensure_reader(tmp_path)
    assert jar == jars.reader_path(tmp_path)
    with zipfile.ZipFile(jar) as archive:
        assert "fruitlens/spark/ReadListedFiles.class" in archive.namelist()
    made = jar.stat().st_mtime_ns
    assert jars.ensure_reader(tmp_path) == jar and jar.stat().st_mtime_ns == made
    assert [path.name for path in tmp_path.iterdir()] == [jar.name]  # nothing half-written left
