"""The Python worker daemon's changes to Spark 4.0's worker (fruitlens.python_daemon): pyspark
imported unpacked, import caches dropped only when the worker's path changed, what outlives a
task frozen out of later collections, and TensorFlow imported before the workers are forked."""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import pytest

from fruitlens import console, paths, python_daemon, session
from fruitlens.config import Config
from fruitlens.pipeline import featurize
from fruitlens.python_daemon import CollectThenFreeze, PathWatch, unpacked_pyspark_first


def test_caches_are_dropped_on_the_first_task_and_when_the_path_grows(
    monkeypatch: pytest.MonkeyPatch,
):
    dropped: list[list[str]] = []
    monkeypatch.setattr(importlib, "invalidate_caches", lambda: dropped.append(list(sys.path)))
    watch = PathWatch()
    watch.invalidate_caches()  # a worker's first task: its spark files folder is new
    watch.invalidate_caches()  # every later task with nothing new on the path
    watch.invalidate_caches()
    assert len(dropped) == 1
    monkeypatch.setattr(sys, "path", [*sys.path, "/spark-files/shipped.zip"])  # --py-files
    watch.invalidate_caches()
    watch.invalidate_caches()
    assert len(dropped) == 2 and dropped[-1][-1] == "/spark-files/shipped.zip"


def package(folder: Path) -> str:
    (folder / "pyspark").mkdir(parents=True)
    (folder / "pyspark" / "__init__.py").touch()
    return str(folder)


def archives_of(spark_home: Path) -> tuple[str, str]:
    lib = spark_home / "python" / "lib"
    return str(lib / "pyspark.zip"), str(lib / "py4j-0.10.9.9-src.zip")


def test_pips_pyspark_is_imported_unpacked_before_its_own_archive(tmp_path: Path):
    site_packages = package(tmp_path / "site-packages")
    pyspark_zip, py4j_zip = archives_of(tmp_path / "site-packages" / "pyspark")
    path = [pyspark_zip, py4j_zip, site_packages]
    spark_home = str(tmp_path / "site-packages" / "pyspark")
    assert unpacked_pyspark_first(path, spark_home) == [py4j_zip, site_packages, pyspark_zip]


def test_a_distributions_python_folder_is_imported_before_its_archive(tmp_path: Path):
    python_folder = package(tmp_path / "spark" / "python")  # the image's PYTHONPATH
    pyspark_zip, py4j_zip = archives_of(tmp_path / "spark")
    path = [pyspark_zip, py4j_zip, python_folder]
    assert unpacked_pyspark_first(path, str(tmp_path / "spark")) == [
        py4j_zip,
        python_folder,
        pyspark_zip,
    ]


@pytest.mark.parametrize("elsewhere", [True, False], ids=["other-installation", "none"])
def test_the_archive_stays_first_without_the_same_installations_pyspark_unpacked(
    tmp_path: Path, elsewhere: bool
):
    pyspark_zip, py4j_zip = archives_of(tmp_path / "spark")
    path = [pyspark_zip, py4j_zip]
    if elsewhere:  # a pyspark of another version must not meet this Spark's JVM
        path.append(package(tmp_path / "other-site-packages"))
    assert unpacked_pyspark_first(path, str(tmp_path / "spark")) == path


def test_what_outlives_a_task_is_left_out_of_later_collections():
    gc.unfreeze()
    try:
        CollectThenFreeze.collect()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def preload_with(monkeypatch: pytest.MonkeyPatch, importer: object) -> None:
    monkeypatch.setattr(console, "quiet_tensorflow", importer)
    gc.unfreeze()
    try:
        python_daemon.preload_tensorflow()
    finally:
        gc.unfreeze()


def test_what_a_preloaded_import_prints_stays_off_the_daemons_channel(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
):
    def noisy_import() -> None:
        print("printed by Python code")
        os.write(1, b"written by native code\n")

    preload_with(monkeypatch, noisy_import)
    printed, errors = capfd.readouterr()
    # The JVM reads the daemon's port from its standard output: nothing else may come first.
    assert printed == ""
    assert "printed by Python code" in errors and "written by native code" in errors


def test_a_daemon_without_tensorflow_still_serves_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
):
    def missing() -> None:
        raise ImportError("No module named 'tensorflow'")

    preload_with(monkeypatch, missing)
    printed, errors = capfd.readouterr()
    assert printed == ""
    assert "TensorFlow not preloaded: No module named 'tensorflow'" in errors


def test_only_sessions_that_featurize_set_up_their_workers_for_tensorflow():
    jars = str(paths.cache_dir() / "jars")
    config = Config(jars_dir=jars)
    # Their daemons preload TensorFlow, and it runs oneDNN's kernels whatever the CPU.
    wanted = {python_daemon.PRELOAD_TENSORFLOW: "1", **featurize.WORKER_ENVIRONMENT}
    featurizing = session.spark_settings(config, featurizes=True)
    others = session.spark_settings(config)  # train, evaluate: no VGG16
    for name, value in wanted.items():
        key = f"spark.executorEnv.{name}"
        assert featurizing[key] == value
        assert key not in others
    # The user's own --spark-conf wins: oneDNN's kernels can be turned off.
    off = "spark.executorEnv.TF_ENABLE_ONEDNN_OPTS=0"
    mine = session.spark_settings(Config(jars_dir=jars, spark_conf=[off]), featurizes=True)
    assert mine["spark.executorEnv.TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_featurizing_sessions_give_every_python_function_the_sql_runners_traceback_variable():
    """Spark keys its Python daemons by the workers' environment and its SQL runners add this
    variable: with it everywhere, featurize.StartingWorkers' RDD job starts the UDF's daemon.
    Where the user turns Spark SQL's simplified tracebacks off, no runner adds it."""
    jars = str(paths.cache_dir() / "jars")
    key = f"spark.executorEnv.{session.SIMPLIFIED_TRACEBACK_VARIABLE}"
    assert session.spark_settings(Config(jars_dir=jars), featurizes=True)[key] == "1"
    assert key not in session.spark_settings(Config(jars_dir=jars))
    off = Config(jars_dir=jars, spark_conf=[f"{session.SIMPLIFIED_TRACEBACK}=false"])
    assert key not in session.spark_settings(off, featurizes=True)


def test_the_standby_refuses_a_daemon_whose_environment_differs_beyond_sparks_launch():
    own = {"TF_ENABLE_ONEDNN_OPTS": "1", "PYTHONHASHSEED": "0", "HOME": "/root"}
    launched = {
        **own,
        # What the JVM adds for each daemon it launches: read after the hand-over.
        "PYTHON_WORKER_FACTORY_SECRET": "secret",
        "SPARK_REUSE_WORKER": "1",
        "PYTHONPATH": "/spark/python/lib/pyspark.zip",
        python_daemon.STANDBY: "/tmp/socket",
    }
    assert python_daemon.refusal(own, launched, sys.path, {}) is None
    # Read by TensorFlow's import, or fixed at the interpreter's start: they must agree.
    launched |= {"TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONHASHSEED": "1"}
    del launched["HOME"]
    why = python_daemon.refusal(own, launched, sys.path, {})
    assert why == "its environment differs in HOME, PYTHONHASHSEED, TF_ENABLE_ONEDNN_OPTS"


def test_the_standby_refuses_a_daemon_whose_path_finds_its_modules_elsewhere(tmp_path: Path):
    for copy in ("imported", "other"):
        (tmp_path / copy).mkdir()
        (tmp_path / copy / "standby_probe.py").write_text("")
    spec = importlib.util.spec_from_file_location(
        "standby_probe", tmp_path / "imported" / "standby_probe.py"
    )
    assert spec is not None
    modules = {"standby_probe": importlib.util.module_from_spec(spec), "os": os, "sys": sys}
    env = {"HOME": "/root"}
    assert python_daemon.refusal(env, env, [str(tmp_path / "imported")], modules) is None
    why = python_daemon.refusal(env, env, [str(tmp_path / "other")], modules)
    assert why == "the daemon's path finds these modules elsewhere: standby_probe"


@pytest.mark.parametrize(
    "setting",
    [
        f"spark.executorEnv.{python_daemon.PRELOAD_TENSORFLOW}=0",
        "spark.python.daemon.module=pyspark.daemon",
    ],
    ids=["no-preload", "another-daemon"],
)
def test_no_standby_where_the_daemon_would_not_preload_tensorflow(setting: str):
    jars = str(paths.cache_dir() / "jars")
    mine = Config(jars_dir=jars, spark_conf=[setting])
    assert session.standby_daemon(session.spark_settings(mine, featurizes=True)) == {}
    # Sessions that train or score stored features import no TensorFlow.
    assert session.standby_daemon(session.spark_settings(Config(jars_dir=jars))) == {}


def test_no_standby_where_its_socket_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A Unix socket's path holds about 100 bytes: under a deeper TMPDIR the daemon imports
    TensorFlow itself, and nothing is left behind."""
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    jars = str(paths.cache_dir() / "jars")
    settings = session.spark_settings(Config(jars_dir=jars), featurizes=True)
    assert session.standby_daemon(settings) == {}
    assert list(deep.iterdir()) == []


def test_a_worker_whose_jvm_hung_up_before_its_secret_ends_without_a_traceback(
    capfd: pytest.CaptureFixture[str],
):
    """Spark's daemon printed the EOFError of such a worker on the job's standard error."""
    from pyspark import daemon

    handlers = {number: signal.getsignal(number) for number in RESET_BY_PYSPARK_WORKER}
    near, far = socket.socketpair()
    far.close()  # the JVM, gone before it sent the secret
    try:
        with pytest.raises(EOFError):
            daemon.worker(near, False)
        assert python_daemon.quiet_when_hung_up(daemon.worker)(near, False) == 1
    finally:
        near.close()
        for number, handler in handlers.items():
            signal.signal(number, handler)
    assert "Traceback" not in capfd.readouterr().err


# pyspark's daemon.worker sets these for the forked worker it expects to run in.
RESET_BY_PYSPARK_WORKER = (signal.SIGHUP, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)
