"""The driver's class-data sharing archive: where it lives, when the JVM is told to map it."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fruitlens import jars, jvm_archive, paths, session
from fruitlens.config import Config

# The jars already fetched into the real cache: the tests below move the cache elsewhere.
JARS = Config(jars_dir=str(paths.cache_dir() / "jars"))
# Spark's launcher, whose classes the JDK check below records.
LAUNCHER = "org.apache.spark.launcher.Main"
# Every Spark has one; the driver's class path names it first (jars.driver_class_path).
SLF4J_API = "slf4j-api-2.0.16.jar"


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
    (home / "jars" / SLF4J_API).write_bytes(b"classes")
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
    assert f" -XX:SharedArchiveFile={archive} -Xlog:cds*=off" in driver_options()
    # A user's options (--spark-conf) go where Spark adds them after these, which stay.
    chosen = dataclasses.replace(JARS, spark_conf=["spark.driver.extraJavaOptions=-Dmine=1"])
    settings = session.spark_settings(chosen)
    assert settings["spark.driver.extraJavaOptions"] == "-Dmine=1"
    assert settings["spark.driver.defaultJavaOptions"] == driver_options()


def test_the_s3a_jars_are_on_the_driver_s_class_path_and_shipped_only_to_a_cluster():
    locked = [str(jar) for jar in jars.ensure_jars(JARS.jars_dir)]
    # Spark's SLF4J API ahead of the SDK bundle's copy of an older one (jars.driver_class_path).
    class_path = os.pathsep.join([str(jars.spark_jar("slf4j-api")), *locked])
    local = session.spark_settings(JARS)
    assert local["spark.driver.defaultExtraClassPath"] == class_path
    assert "spark.jars" not in local  # no copy of the SDK bundle per session
    cluster = session.spark_settings(dataclasses.replace(JARS, master="spark://spark:7077"))
    assert cluster["spark.driver.defaultExtraClassPath"] == class_path
    assert cluster["spark.jars"] == ",".join(locked)


def test_an_s3a_jar_fetched_again_records_anew(fake_java: Path, tmp_path: Path):
    """They are on the class path the JVM compares with the recording's."""
    bundle = tmp_path / "cache" / "jars" / jars.read_lock()[0].file_name
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(b"classes")
    archive = jvm_archive.archive_path()
    os.utime(bundle, ns=(0, 10**18))
    assert jvm_archive.archive_path() != archive


@pytest.fixture
def spark_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A venv's pyspark folder with a few jars and its scripts, on the cache's file system."""
    home = tmp_path / "clone" / "pyspark"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "spark-submit").write_text("#!/bin/sh\n")
    (home / "jars").mkdir()
    for name in ("spark-core.jar", "hadoop-client.jar", "scala-library.jar", SLF4J_API):
        (home / "jars" / name).write_bytes(name.encode())
    (home / "jars" / "connect-repl").mkdir()  # a folder, as pyspark has: not on the class path
    monkeypatch.setattr(jars, "pyspark_home", lambda: home)
    return home


def listed_jars(folder: Path) -> list[str]:
    """In the folder's own order, the one the JVM expands `jars/*` in."""
    return [name for name in os.listdir(folder) if name.endswith(".jar")]


def recording_child(code: int, homes: list[str | None] | None = None):
    """The recording child (a JVM session, about 40 s; `make jars` runs it for real), standing
    in as a function writing the file it is given, then exiting with `code`."""

    def run(command: list[str], **options: Any) -> subprocess.CompletedProcess:
        if homes is not None:
            homes.append(options["env"].get("SPARK_HOME"))
        Path(command[-1]).write_bytes(b"recorded")
        return subprocess.CompletedProcess(command, code)

    return run


def test_the_recording_names_a_shared_folder_of_the_same_jar_files(
    fake_java: Path, spark_install: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Recorded from a folder in the cache whose jars are the venv's files (hard links), the
    archive outlives the venv and serves every other venv made of the same files, as uv makes
    each clone's: the JVM accepts a class path entry that is the recorded jar's file at another
    path (test_the_jvm_maps_an_archive_through_a_hard_link_to_a_recorded_jar)."""
    homes: list[str | None] = []
    monkeypatch.setattr(jvm_archive.subprocess, "run", recording_child(0, homes))
    archive = jvm_archive.record()
    assert archive is not None and archive.is_file()
    shared = Path(str(homes[0]))
    assert shared.parent == archive.parent
    assert listed_jars(shared / "jars") == listed_jars(spark_install / "jars")
    for name in listed_jars(spark_install / "jars"):
        assert (shared / "jars" / name).samefile(spark_install / "jars" / name)
    assert (shared / "bin" / "spark-submit").samefile(spark_install / "bin" / "spark-submit")
    assert archive.with_suffix(".install").read_text() == str(shared)

    # A second clone installed from the same uv cache: its jars are the same files.
    clone = tmp_path / "second-clone" / "pyspark"
    (clone / "jars").mkdir(parents=True)
    for name in listed_jars(spark_install / "jars"):
        os.link(spark_install / "jars" / name, clone / "jars" / name)
    monkeypatch.setattr(jars, "pyspark_home", lambda: clone)
    assert jvm_archive.archive_path() == archive
    # One jar a copy, of the same size and modification time: another file, another archive.
    copy = clone / "jars" / "spark-core.jar"
    copy.unlink()
    shutil.copy2(spark_install / "jars" / "spark-core.jar", copy)
    assert jvm_archive.archive_path() != archive


def test_without_hard_links_the_archive_is_recorded_from_the_venv_s_own_folder(
    fake_java: Path, spark_install: Path, monkeypatch: pytest.MonkeyPatch
):
    """The cache on another file system than the venv: the archive then serves this venv
    alone, and is removed once its folder is gone (the next test)."""

    def cross_device(source: Path, target: Path) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(target))

    homes: list[str | None] = []
    monkeypatch.delenv("SPARK_HOME", raising=False)
    monkeypatch.setattr(jvm_archive.os, "link", cross_device)
    monkeypatch.setattr(jvm_archive.subprocess, "run", recording_child(0, homes))
    archive = jvm_archive.record()
    assert homes == [None]  # the session finds the venv's Spark itself, as a run does
    assert archive is not None
    assert archive.with_suffix(".install").read_text() == str(spark_install)
    assert {path.name for path in archive.parent.iterdir()} == {
        archive.name,
        f"{archive.stem}.install",
    }


def test_a_pyspark_without_its_jars_records_with_spark_home_untouched(
    fake_java: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A Spark distribution's pyspark (the image's, on PYTHONPATH) has no jars folder: Spark
    is found through SPARK_HOME, which the recording leaves as it is, and no shared folder is
    made."""
    package = tmp_path / "spark" / "python" / "pyspark"
    package.mkdir(parents=True)
    (tmp_path / "spark" / "jars").mkdir()
    (tmp_path / "spark" / "jars" / SLF4J_API).write_bytes(b"classes")
    monkeypatch.setattr(jars, "pyspark_home", lambda: package)
    monkeypatch.setenv("SPARK_HOME", str(tmp_path / "spark"))
    homes: list[str | None] = []
    monkeypatch.setattr(jvm_archive.subprocess, "run", recording_child(0, homes))
    archive = jvm_archive.record()
    assert homes == [str(tmp_path / "spark")]
    assert archive is not None and archive.name.startswith(f"spark-{jars.spark_version()}-")
    assert not [path for path in archive.parent.iterdir() if path.is_dir()]


def test_a_recording_is_installed_only_whole_and_replaces_older_and_orphaned_ones(
    fake_java: Path, spark_install: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "cache" / "jvm"
    folder.mkdir(parents=True)

    def recorded(name: str, home: Path | None) -> Path:
        older = folder / f"spark-{jars.spark_version()}-{name}.jsa"
        older.write_bytes(b"an older recording")
        if home is not None:
            older.with_suffix(".install").write_text(str(home))
        return older

    def shared_folder(name: str, linked_elsewhere: bool) -> Path:
        home = folder / f"spark-{jars.spark_version()}-jars-{name}"
        (home / "jars").mkdir(parents=True)
        (home / "jars" / "spark-core.jar").write_bytes(b"classes")
        if linked_elsewhere:  # a venv, or uv's cache, still holds the file
            os.link(home / "jars" / "spark-core.jar", tmp_path / f"{name}.jar")
        return home

    unnoted = recorded("000000000000-00000000", None)  # before notes were written: left alone
    elsewhere = recorded("111111111111-00000000", tmp_path / "clone")  # another clone's venv
    deleted = recorded("222222222222-00000000", tmp_path / "deleted-clone" / "pyspark")
    in_use = recorded("333333333333-00000000", shared_folder("in-use", linked_elsewhere=True))
    orphan = shared_folder("orphan", linked_elsewhere=False)
    orphaned = recorded("444444444444-00000000", orphan)

    def names() -> set[str]:
        return {path.name for path in folder.iterdir() if not path.is_dir()}

    before = names()
    monkeypatch.setattr(jvm_archive.subprocess, "run", recording_child(1))
    assert jvm_archive.record() is None
    assert names() == before  # no archive, no partial file left
    monkeypatch.setattr(jvm_archive.subprocess, "run", recording_child(0))
    archive = jvm_archive.record()
    assert archive is not None
    kept = {unnoted, elsewhere, in_use, archive}
    assert names() == {path.name for path in kept} | {
        path.with_suffix(".install").name for path in kept - {unnoted}
    }
    assert not deleted.exists() and not orphaned.exists() and not orphan.exists()


def test_the_jvm_maps_an_archive_through_a_hard_link_to_a_recorded_jar(tmp_path: Path):
    """What the shared folder relies on, asked of this JDK with one of Spark's jars: an
    archive recorded with the class path `recorded/*` maps with `linked/*` whose jar is the
    same file, and not with a copy of it, nor once the recorded path is gone. -Xshare:on makes
    a refusal an error instead of a silent start without the archive; a mapping shows in the
    classes loaded from it."""
    launcher = next((jars.pyspark_home() / "jars").glob("spark-launcher_*.jar"))
    for folder in ("recorded", "linked", "copied"):
        (tmp_path / folder).mkdir()
    os.link(launcher, tmp_path / "recorded" / "launcher.jar")
    os.link(launcher, tmp_path / "linked" / "launcher.jar")
    shutil.copy2(launcher, tmp_path / "copied" / "launcher.jar")
    archive = tmp_path / "recorded.jsa"
    # The launcher's main class without arguments loads its classes, then stops with a usage
    # error: enough to record them.
    java(f"-XX:ArchiveClassesAtExit={archive}", "-cp", f"{tmp_path}/recorded/*", LAUNCHER)

    def maps_it(folder: str) -> bool:
        classpath = f"{tmp_path}/{folder}/*"
        archive_option = f"-XX:SharedArchiveFile={archive}"
        started = java(archive_option, "-Xshare:on", "-Xlog:class+load", "-cp", classpath, LAUNCHER)
        # "top": the layer the recording added, where the launcher's classes are.
        return "source: shared objects file (top)" in started.stdout

    assert archive.is_file()
    assert maps_it("recorded") and maps_it("linked")
    assert not maps_it("copied")
    (tmp_path / "recorded" / "launcher.jar").unlink()
    assert not maps_it("linked")


@pytest.mark.parametrize("openblas", [False, True])
@pytest.mark.parametrize(
    ("input_files", "small"),
    [
        (None, False),
        (1, True),
        (session.SMALL_RUN_BELOW_FILES - 1, True),
        (session.SMALL_RUN_BELOW_FILES, False),
    ],
)
def test_c1_only_for_a_small_run_or_openblas_numerics_and_the_serial_collector_for_all(
    monkeypatch: pytest.MonkeyPatch, input_files: int | None, small: bool, openblas: bool
):
    monkeypatch.setattr(session, "openblas_loads", lambda: openblas)
    options = session.spark_settings(JARS, input_files)["spark.driver.defaultJavaOptions"]
    assert ("-XX:TieredStopAtLevel=1" in options) == (small or openblas)
    # The code cache keeps the tiered default: C1 alone would shrink it to 48 MiB.
    assert ("-XX:ReservedCodeCacheSize=240m" in options) == (small or openblas)
    assert "-XX:+UseSerialGC" in options


def test_netlib_pointed_elsewhere_by_the_user_keeps_c2_for_a_large_run(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(session, "openblas_loads", lambda: True)
    java_netlib = "-Ddev.ludovic.netlib.lapack.nativeLibPath=/nowhere/liblapack.so.3"
    chosen = dataclasses.replace(JARS, spark_conf=[f"spark.driver.extraJavaOptions={java_netlib}"])
    large = session.spark_settings(chosen, session.SMALL_RUN_BELOW_FILES)
    assert "-XX:TieredStopAtLevel=1" not in large["spark.driver.defaultJavaOptions"]
    small = session.spark_settings(chosen, 10)
    assert "-XX:TieredStopAtLevel=1" in small["spark.driver.defaultJavaOptions"]


OPENBLAS_LAPACK = sorted(Path("/usr/lib").glob("*/openblas-pthread/liblapack.so.3"))


def test_openblas_is_told_from_other_libraries_by_loading_them():
    # Loaded, but not OpenBLAS (the C library every process has), or not there at all.
    assert not session.openblas_loads(("libc.so.6",))
    assert not session.openblas_loads(("libfruitlens-none.so.3",))
    if not OPENBLAS_LAPACK:
        pytest.skip("Debian's threaded OpenBLAS is not installed (make native-linalg)")
    assert session.openblas_loads((str(OPENBLAS_LAPACK[0]),))


def java(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [jvm_archive.java_binary(), *arguments], capture_output=True, text=True, check=False
    )


def java_starts(*options: str) -> subprocess.CompletedProcess:
    return java(*options, "-version")


@pytest.mark.parametrize("input_files", [10, session.SMALL_RUN_BELOW_FILES])
def test_a_collector_the_user_names_replaces_the_serial_one(
    monkeypatch: pytest.MonkeyPatch, input_files: int
):
    monkeypatch.setattr(session, "openblas_loads", lambda: False)
    mine = "-XX:+UseParallelGC"
    chosen = dataclasses.replace(JARS, spark_conf=[f"spark.driver.extraJavaOptions={mine}"])
    settings = session.spark_settings(chosen, input_files)
    options = settings["spark.driver.defaultJavaOptions"]
    assert "UseSerialGC" not in options
    assert ("-XX:TieredStopAtLevel=1" in options) == (input_files < session.SMALL_RUN_BELOW_FILES)
    # Spark's launcher puts the user's options after the job's: the JVM starts with both.
    started = java_starts(*options.split(), *settings["spark.driver.extraJavaOptions"].split())
    assert started.returncode == 0, started.stderr
    # Which it would refuse with the serial collector left in.
    refused = java_starts(*session.SMALL_RUN_JVM.split(), mine)
    assert "Multiple garbage collectors selected" in refused.stderr + refused.stdout
