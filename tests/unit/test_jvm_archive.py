"""The driver's class-data sharing archive: where it lives, when the JVM is told to map it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from fruitlens import jars, jvm_archive, paths, session
from fruitlens.config import Config

# The jars already fetched into the real cache: the tests below move the cache elsewhere.
JARS = Config(jars_dir=str(paths.cache_dir() / "jars"))


@pytest.fixture
def fake_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_bytes(b"a JDK's launcher")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("FRUITLENS_CACHE", str(tmp_path / "cache"))
    return java


def test_the_archive_is_named_after_spark_and_the_jdk(fake_java: Path, tmp_path: Path):
    archive = jvm_archive.archive_path()
    assert archive.parent == tmp_path / "cache" / "jvm"
    assert archive.name.startswith(f"spark-{jars.spark_version()}-")
    assert jvm_archive.archive_path() == archive
    fake_java.write_bytes(b"another JDK's launcher, installed in its place")
    os.utime(fake_java, ns=(0, 10**18))
    assert jvm_archive.archive_path() != archive  # never mapped by a JVM it was not made by


def test_a_venv_made_anew_in_the_same_folder_records_anew(
    fake_java: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Reinstalled in place, Spark's jars keep their names and folder but not their
    modification times, and the JVM refuses an archive over that, silently: the name changes
    with them, within the same install, whose older recording record() then removes."""
    home = tmp_path / "pyspark"
    (home / "jars").mkdir(parents=True)
    jar = home / "jars" / "spark-core.jar"
    jar.write_bytes(b"classes")
    monkeypatch.setattr(jars, "pyspark_home", lambda: home)
    archive = jvm_archive.archive_path()
    os.utime(jar, ns=(0, 10**18))
    reinstalled = jvm_archive.archive_path()
    assert reinstalled != archive
    assert reinstalled.name.rsplit("-", 1)[0] == archive.name.rsplit("-", 1)[0]


def test_the_driver_maps_the_archive_only_once_recorded(fake_java: Path):
    def driver_options() -> str:
        return session.spark_settings(JARS)["spark.driver.defaultJavaOptions"]

    assert "SharedArchiveFile" not in driver_options()
    archive = jvm_archive.archive_path()
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"recorded")
    assert driver_options().endswith(f" -XX:SharedArchiveFile={archive} -Xlog:cds*=off")
    # A user's options (--spark-conf) go where Spark adds them after these, which stay.
    chosen = dataclasses.replace(JARS, spark_conf=["spark.driver.extraJavaOptions=-Dmine=1"])
    settings = session.spark_settings(chosen)
    assert settings["spark.driver.extraJavaOptions"] == "-Dmine=1"
    assert settings["spark.driver.defaultJavaOptions"] == driver_options()


def test_a_recording_is_installed_only_whole_and_replaces_older_and_orphaned_ones(
    fake_java: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The recording child (a JVM session, about 40 s; `make jars` runs it for real) stands in
    here as a function writing the file it is given, then exiting 1 or 0."""
    archive = jvm_archive.archive_path()
    archive.parent.mkdir(parents=True)
    older = archive.with_name(archive.name.rsplit("-", 1)[0] + ".jsa")  # before the module key
    older.write_bytes(b"an older recording")
    elsewhere = archive.with_name(f"spark-{jars.spark_version()}-000000000000-00000000.jsa")
    elsewhere.write_bytes(b"another clone's")
    deleted = archive.with_name(f"spark-{jars.spark_version()}-111111111111-00000000.jsa")
    deleted.write_bytes(b"a deleted clone's")
    deleted.with_suffix(".install").write_text(str(tmp_path / "deleted-clone" / "pyspark"))

    def child_exiting(code: int):
        def run(command: list[str], **_: object) -> subprocess.CompletedProcess:
            Path(command[-1]).write_bytes(b"recorded")
            return subprocess.CompletedProcess(command, code)

        return run

    def names() -> set[str]:
        return {path.name for path in archive.parent.iterdir()}

    monkeypatch.setattr(jvm_archive.subprocess, "run", child_exiting(1))
    assert jvm_archive.record() is None
    # No archive, no partial file left.
    assert names() == {older.name, elsewhere.name, deleted.name, f"{deleted.stem}.install"}
    monkeypatch.setattr(jvm_archive.subprocess, "run", child_exiting(0))
    assert jvm_archive.record() == archive
    # Another clone's stays while its install may exist; a deleted clone's goes.
    assert names() == {archive.name, f"{archive.stem}.install", elsewhere.name}
    assert archive.with_suffix(".install").read_text() == str(jars.pyspark_home())


@pytest.mark.parametrize(
    ("input_files", "small"),
    [
        (None, False),
        (1, True),
        (session.SMALL_RUN_BELOW_FILES - 1, True),
        (session.SMALL_RUN_BELOW_FILES, False),
    ],
)
def test_a_small_run_s_driver_has_c1_only_and_the_serial_collector(
    input_files: int | None, small: bool
):
    options = session.spark_settings(JARS, input_files)["spark.driver.defaultJavaOptions"]
    assert ("-XX:TieredStopAtLevel=1" in options) == small
    # The code cache keeps the tiered default: C1 alone would shrink it to 48 MiB.
    assert ("-XX:ReservedCodeCacheSize=240m" in options) == small
    assert ("-XX:+UseSerialGC" in options) == small


def java_starts(*options: str) -> subprocess.CompletedProcess:
    java = jvm_archive.java_binary()
    return subprocess.run([java, *options, "-version"], capture_output=True, text=True)


def test_a_collector_the_user_names_replaces_the_serial_one():
    mine = "-XX:+UseParallelGC"
    chosen = dataclasses.replace(JARS, spark_conf=[f"spark.driver.extraJavaOptions={mine}"])
    settings = session.spark_settings(chosen, input_files=10)
    options = settings["spark.driver.defaultJavaOptions"]
    assert "-XX:TieredStopAtLevel=1" in options and "UseSerialGC" not in options
    # Spark's launcher puts the user's options after the job's: the JVM starts with both.
    started = java_starts(*options.split(), *settings["spark.driver.extraJavaOptions"].split())
    assert started.returncode == 0, started.stderr
    # Which it would refuse with the serial collector left in.
    refused = java_starts(*session.SMALL_RUN_JVM.split(), mine)
    assert "Multiple garbage collectors selected" in refused.stderr + refused.stdout
