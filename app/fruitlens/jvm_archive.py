"""A class-data sharing archive of the classes a local Spark driver loads (JDK 13+ dynamic
AppCDS), kept in the cache beside the jars.

A JVM that maps it skips loading and verifying about 10 000 classes: on 2 vCPUs a local
session started in 4.0 s instead of 6.2, and its first job ran in 1.7 s instead of 3.5. The
archive is optional: without it (or with one the JVM cannot use, which it ignores silently)
the driver starts as before. `python -m fruitlens.jvm_archive` records it once per cache and set of
Spark's jar files (with the cache's s3a jars, also on the class path), which every venv
installed from the same uv cache shares (a fresh clone included); `make run` and `make test`
call it through `make jars`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fruitlens import checksum, jars, paths

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

# Recording starts a JVM, runs a few tiny jobs and writes ~200 MB: well under a minute.
RECORD_TIMEOUT_S = 300


def java_binary() -> Path:
    """The java that Spark's launcher runs: $JAVA_HOME/bin/java, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    found = Path(java_home, "bin", "java") if java_home else shutil.which("java")
    return Path(found or "java").resolve()


def archive_path() -> Path:
    """Named after the install (Spark's version, the java binary, the Spark folder the
    recording ran from), then after the recording (this module and the jars on the class
    path): the JVM maps an archive only with the class path it was recorded with, down to each
    jar's size and modification time, and refuses any other silently. So another JDK or Spark
    records its own, and so do a venv made of other jar files and a changed recording (what
    `load_the_classes_a_run_loads` does), instead of starting without one."""
    recording = Path(__file__).read_bytes() + _class_path_stamp()
    return _archives_folder() / f"{_install_prefix()}-{checksum.sha256(recording)[:8]}.jsa"


def _class_path_stamp() -> bytes:
    """What the JVM compares of each jar on the driver's class path (Spark's SLF4J API, the
    s3a jars and the reader in the cache's default folder, then Spark's `jars/*`) with the
    recording before it maps an archive: the jars in the order it expands them, each the same
    file (device and inode), of the same size and modification time."""
    stamps = []
    folder = jars.default_folder()
    locked = [folder / jar.file_name for jar in jars.read_lock()] + [jars.reader_path(folder)]
    ahead = jars.driver_class_path([path for path in locked if path.is_file()])
    for jar in ahead + _listed_jars(jars.pyspark_home() / "jars"):
        status = jar.stat()
        stamps.append(
            f"{jar.name} {status.st_size} {status.st_mtime_ns} {status.st_dev} {status.st_ino}\n"
        )
    return "".join(stamps).encode("utf-8")


def _listed_jars(folder: Path) -> list[Path]:
    """In the folder's own order (os.listdir's), in which the JVM expands `folder/*`. None
    where pyspark comes without its jars (a Spark distribution's, as in the image)."""
    if not folder.is_dir():
        return []
    return [folder / name for name in os.listdir(folder) if name.endswith(".jar")]


def _archives_folder() -> Path:
    return paths.cache_dir() / "jvm"


def _install_prefix() -> str:
    java = java_binary()
    stamp = java.stat() if java.exists() else None
    identity = (
        f"{java}|{stamp.st_size if stamp else 0}|{stamp.st_mtime_ns if stamp else 0}"
        f"|{_recorded_spark_home()}"
    )
    return f"spark-{jars.spark_version()}-{checksum.sha256(identity.encode('utf-8'))[:12]}"


def _shared_spark_home() -> Path:
    """A Spark folder in the cache whose jars are hard links to this venv's, named after them.
    The JVM checks each jar of the recording at its recorded path, which must still exist, and
    accepts a jar of the class path that is the same file (JDK 17's os::same_files: device and
    inode). A recording from a venv's own folder was lost with that venv, and every fresh clone
    recorded again (37 s before `make test`'s Spark lanes). Recorded from here, it serves every
    venv made of the same files: uv hard-links each venv's packages to one copy in its cache."""
    stamp = checksum.sha256(_class_path_stamp())[:12]
    return _archives_folder() / f"spark-{jars.spark_version()}-jars-{stamp}"


def _recorded_spark_home() -> Path:
    """The shared folder where `record()` could make it, else the venv's own (the cache on
    another file system, where no hard link reaches): the archive then serves this venv alone."""
    shared = _shared_spark_home()
    return shared if shared.is_dir() else jars.pyspark_home()


def _link_shared_spark_home() -> None:
    """Links Spark's jars into the shared folder, once. They must list in the venv's order (the
    JVM compares the class paths entry by entry); on one ext4 file system, folders holding the
    same names list them in the same (hash) order."""
    home = _shared_spark_home()
    if home.is_dir():
        return
    own = _listed_jars(jars.pyspark_home() / "jars")
    if not own:
        return
    partial = home.with_name(f"{home.name}.{os.getpid()}.partial")
    try:
        (partial / "jars").mkdir(parents=True)
        for jar in own:
            os.link(jar, partial / "jars" / jar.name)
        if [jar.name for jar in _listed_jars(partial / "jars")] == [jar.name for jar in own]:
            partial.rename(home)
    except OSError:
        pass  # recorded from the venv's own folder; a concurrent recorder's folder is as good
    shutil.rmtree(partial, ignore_errors=True)


def java_options() -> str:
    """The driver JVM's options that map the archive, when one was recorded. The JVM prints
    why it cannot map an archive on stdout, where a command's JSON goes: an archive is a
    cache, and a miss is silent (-Xlog:cds*=off)."""
    archive = archive_path()
    return f" -XX:SharedArchiveFile={archive} -Xlog:cds*=off" if archive.is_file() else ""


def record() -> Path | None:
    """The archive, recorded first if missing. The JVM writes it as it exits, so a child
    process runs the session and waits for its JVM to end; the file is renamed into place only
    when that child succeeded, and a half-written archive is never mapped."""
    archive = archive_path()
    if archive.is_file():
        return archive
    _archives_folder().mkdir(parents=True, exist_ok=True)
    _link_shared_spark_home()
    home = _recorded_spark_home()
    archive = archive_path()
    environment = dict(os.environ)
    if home != jars.pyspark_home():
        # spark-submit and the launcher the recording's session starts, from this venv.
        link = home / f"bin.{os.getpid()}"
        link.symlink_to(jars.pyspark_home() / "bin")
        link.replace(home / "bin")
        environment["SPARK_HOME"] = str(home)
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.partial")
    command = [sys.executable, "-m", "fruitlens.jvm_archive", "--write-at-exit", str(partial)]
    done = subprocess.run(
        command,
        capture_output=True,
        timeout=RECORD_TIMEOUT_S,
        check=False,
        env=environment,
    )
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        return None
    partial.replace(archive)
    _install_note(archive).write_text(str(home), encoding="utf-8")
    # 200 MB each, mapped by no new JVM: this install's older recordings, and those of installs
    # that are gone (a deleted clone's venv, a shared folder no venv can match any more).
    install = _install_prefix()
    for older in _archives_folder().glob("*.jsa"):
        noted = _noted_spark_home(older)
        gone = noted is not None and _unmatchable(noted)
        if older != archive and (gone or older.name.startswith(install)):
            older.unlink(missing_ok=True)
            _install_note(older).unlink(missing_ok=True)
            if gone and _is_shared(noted):
                shutil.rmtree(noted, ignore_errors=True)
    return archive


def _install_note(archive: Path) -> Path:
    """Beside each archive, the Spark folder it was recorded from."""
    return archive.with_suffix(".install")


def _noted_spark_home(archive: Path) -> Path | None:
    """None for an archive recorded before notes were written: left alone."""
    note = _install_note(archive)
    return Path(note.read_text(encoding="utf-8")) if note.is_file() else None


def _unmatchable(home: Path) -> bool:
    """Whether no JVM can map an archive recorded from this Spark folder any more: it is gone
    (a deleted clone's venv), or it is a shared folder whose jars are linked nowhere else (no
    venv, nor uv's cache: a venv made later has other files)."""
    if not home.is_dir():
        return True
    return _is_shared(home) and any(jar.stat().st_nlink == 1 for jar in _listed_jars(home / "jars"))


def _is_shared(home: Path) -> bool:
    """A Spark folder `_link_shared_spark_home` made in the cache, not a venv's own."""
    return home.parent == _archives_folder()


def load_the_classes_a_run_loads(spark: SparkSession) -> int:
    """One small thing of each kind a run does: SQL, a pandas UDF over Arrow, Parquet, the
    scaler, PCA, the label index and a logistic regression. Returns the rows that went
    through the pandas UDF."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.linalg import Vectors

    from fruitlens.pipeline import classify

    rows = [(Vectors.dense([float(i % 3), float(i)]), f"class {i % 2}") for i in range(8)]
    frame = spark.createDataFrame(rows, ["features", "label"])
    prepared = classify.preparation(2).fit(frame).transform(frame)
    LogisticRegression(featuresCol="pca", labelCol=classify.LABEL_INDEX, maxIter=2).fit(prepared)
    with tempfile.TemporaryDirectory() as folder:
        frame.write.parquet(f"{folder}/frame")
        return spark.read.parquet(f"{folder}/frame").mapInPandas(same_batches, frame.schema).count()


def same_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    # A def, not the builtin iter: pyspark inspects the function's signature, which iter lacks.
    return batches


def _write_at_exit(partial: str) -> None:
    """A local session that loads what a run loads, then its JVM's exit, waited for: the JVM
    writes the archive (~200 MB) only then, and this process must not end before it has."""
    from pyspark import SparkContext

    from fruitlens import session
    from fruitlens.config import Config

    # Added to the job's own options (spark.driver.defaultJavaOptions), as a user's would be.
    # A small run's JVM (C1 only, serial collector): this one runs a few tiny jobs and exits,
    # so C2's compiling never pays back (37 s either way; 37.5 CPU-s against 45.6, user and
    # system, on a 2-core Xeon). The archive holds classes, not compiled code or heap: a JVM
    # with C2 and G1 maps it.
    options = f"-XX:ArchiveClassesAtExit={partial} {session.SMALL_RUN_JVM}"
    config = Config(master="local[1]", spark_conf=[f"spark.driver.extraJavaOptions={options}"])
    spark = session.start_session(config.validate(), "fruitlens-jvm-archive")
    load_the_classes_a_run_loads(spark)
    spark.stop()
    jvm = SparkContext._gateway.proc  # type: ignore[union-attr]
    jvm.stdin.close()  # Spark's gateway server exits when its stdin ends
    jvm.wait(timeout=RECORD_TIMEOUT_S)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-at-exit"]:
        _write_at_exit(sys.argv[2])
    else:
        print(record() or "no archive: this JVM could not record one")
