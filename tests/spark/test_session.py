"""What the job's session settings give its Python workers, seen from inside a task; where the
driver's log lines go; the work the class archive is recorded from (fruitlens.jvm_archive), run
on a session; and that the session's driver maps that archive."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from fruitlens import console, python_daemon, session

pytestmark = [pytest.mark.spark]


def test_python_workers_run_under_the_fruitlens_daemon(spark: SparkSession):
    def watcher(_: Iterator[int]) -> Iterator[tuple[str, str, bool]]:
        import pyspark
        from pyspark import daemon, worker_util

        invalidate = worker_util.importlib.invalidate_caches
        watch = type(getattr(invalidate, "__self__", None)).__name__
        yield watch, daemon.gc.__name__, ".zip" in pyspark.__file__

    # Several tasks, so the reused worker's later tasks are seen too.
    found = spark.sparkContext.parallelize(range(6), 6).mapPartitions(watcher).collect()
    assert found == [("PathWatch", "CollectThenFreeze", False)] * 6


def test_a_named_block_inside_another_gives_the_outer_name_back(spark: SparkSession):
    """A named block gives back the name it found: the jobs after the featurize block (the
    writes) are not named featurize, which the cluster test's search for featurize tasks relies
    on, and a block inside another gives the outer name back."""
    from fruitlens.pipeline.featurize import FEATURIZE_JOB

    def named() -> str | None:
        return spark.sparkContext.getLocalProperty("spark.job.description")

    with session.job_description(spark, FEATURIZE_JOB):
        with session.job_description(spark, "inner"):
            assert named() == "inner"
        assert named() == FEATURIZE_JOB
    assert named() is None


def test_a_local_session_gives_blas_one_thread_per_call(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
):
    # The tier's session was started with the default (conftest sets what start_session would).
    assert spark.sparkContext._jvm.java.lang.System.getenv("OPENBLAS_NUM_THREADS") == "1"
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.setenv("PYSPARK_PYTHON", "/a/python/of/the/user")
    session.export_local_defaults()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["PYSPARK_PYTHON"] == "/a/python/of/the/user"  # a user's own value wins


def test_spark_s_log_lines_reach_log4j_not_slf4j_s_nop_logger(spark: SparkSession):
    """The AWS SDK bundle on the driver's class path carries SLF4J 1.7's API unshaded
    (jars.driver_class_path): first on the class path, every line Spark logged was dropped."""
    jvm = spark.sparkContext._jvm
    factory = jvm.org.slf4j.LoggerFactory.getILoggerFactory().getClass().getName()
    assert factory == "org.apache.logging.slf4j.Log4jLoggerFactory"
    api = jvm.java.lang.Class.forName("org.slf4j.LoggerFactory")
    where = api.getProtectionDomain().getCodeSource().getLocation().getPath()
    assert Path(where).name.startswith("slf4j-api-2."), where


def test_the_archive_recording_runs_every_kind_of_job_it_names(spark: SparkSession):
    """`make jars` records the archive in a child process whose failure only means no archive:
    an error part way (the builtin `iter` given to mapInPandas, which pyspark cannot inspect,
    once stopped it before the pandas UDF) would leave its later classes out unnoticed."""
    from fruitlens import jvm_archive

    assert jvm_archive.load_the_classes_a_run_loads(spark) == 8


def test_the_driver_maps_the_recorded_class_archive(spark: SparkSession):
    """The JVM maps an archive only if the class path's jars are the ones it was recorded with,
    and otherwise starts without it and says nothing (as it did after a venv was made anew in
    place). Mapped, the archive file is among the driver's memory mappings."""
    from pyspark import SparkContext

    from fruitlens import jvm_archive

    archive = jvm_archive.archive_path()
    if not archive.is_file():
        pytest.skip("no archive recorded for this venv: `make jars` records it")
    # spark-submit's scripts exec the driver's JVM: the launched process is the JVM.
    driver = SparkContext._gateway.proc.pid  # type: ignore[union-attr]
    assert str(archive) in Path(f"/proc/{driver}/maps").read_text()


def launch_daemon(environment: dict[str, str]) -> subprocess.Popen[bytes]:
    """The daemon as Spark's JVM launches it: its port comes back on standard output, and
    closing its standard input stops it."""
    command = [sys.executable, "-m", python_daemon.__name__, "pyspark.worker"]
    pipe = subprocess.PIPE
    return subprocess.Popen(command, env=environment, stdin=pipe, stdout=pipe, stderr=pipe)


def parent_of_a_worker(daemon: subprocess.Popen[bytes]) -> list[bytes]:
    """The command line of the process a worker of `daemon` was forked from."""
    assert daemon.stdout is not None
    (port,) = struct.unpack(">i", daemon.stdout.read(4))
    with socket.create_connection((session.LOOPBACK, port)) as connection:
        (worker,) = struct.unpack(">i", connection.recv(4))  # the forked worker's pid
        status = Path(f"/proc/{worker}/status").read_text()
        parent = re.search(r"^PPid:\s+(\d+)$", status, re.MULTILINE)
        assert parent is not None
        return Path(f"/proc/{parent.group(1)}/cmdline").read_bytes().split(b"\0")


@pytest.mark.parametrize("same_environment", [True, False], ids=["taken-over", "refused"])
def test_the_daemon_spark_launches_hands_its_work_to_the_standby(same_environment: bool):
    """Without a JVM: the standby the driver starts (session.standby_daemon) imports TensorFlow,
    the daemon launched later hands it its streams, and the workers are forked from the
    standby; where the two environments differ, the launched daemon serves itself."""
    preload = python_daemon.PRELOAD_TENSORFLOW
    verbose = {console.WORKERS_VERBOSITY: str(console.EVERYTHING)}  # both lines are printed
    environment = {**os.environ, preload: "1", **verbose, "PYTHONHASHSEED": "0"}
    address = python_daemon.start_standby(environment, sys.executable)
    launched = {
        **environment,
        python_daemon.STANDBY: address,
        "PYTHON_WORKER_FACTORY_SECRET": "not checked here",
        "SPARK_REUSE_WORKER": "1",
        preload: "1" if same_environment else "0",
    }
    daemon = launch_daemon(launched)
    assert (b"--standby" in parent_of_a_worker(daemon)) == same_environment
    _, errors = daemon.communicate(timeout=60)  # closes its standard input, as the JVM does
    said = python_daemon.TOOK_OVER if same_environment else python_daemon.NOT_TAKEN_OVER
    assert said in errors.decode()
    assert not Path(address).parent.exists()  # the standby removed its socket's folder
