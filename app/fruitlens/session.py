"""The SparkSession: local by default, whatever spark-submit says when launched by it.

This module is the one place the s3a, committer and tuning settings are built; the Helm chart
and the kustomize overlays restate none of them. Under spark-submit (the Spark Operator runs
it inside the driver pod) the job still creates the SparkSession itself, so the settings set
on the builder here are in the SparkConf the SparkContext starts with: the driver's Hadoop
configuration is built from it, and executors, which the driver launches afterwards, receive
it at registration. None of them has to be known at submit time; only what shapes the pods
(image, resources, service account, volumes) does, and the SparkApplication carries that.

Keys that spark-submit already holds (a SparkApplication's sparkConf/hadoopConf) win over the
defaults here, so a deliberate override in a manifest is never silently undone.
"""

from __future__ import annotations

import ctypes
import glob
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from fruitlens import console, jars, jvm_archive, paths, python_daemon
from fruitlens.config import Config

if TYPE_CHECKING:
    from pathlib import Path

    from pyspark import SparkContext
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

S3A_COMMITTER = {
    # The magic committer writes straight to the destination as invisible multipart uploads
    # and makes them visible only on job commit: no rename, no half-written dataset on S3.
    "spark.hadoop.fs.s3a.committer.name": "magic",
    "spark.hadoop.fs.s3a.committer.magic.enabled": "true",
    "spark.sql.sources.commitProtocolClass": (
        "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol"
    ),
    "spark.sql.parquet.output.committer.class": (
        "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter"
    ),
}

S3A_FAILURE_BOUNDS = {
    # A stopped S3 server must fail the job in minutes, not hang it: bounded retries, short
    # connection timeouts (docs/OPERATIONS.md works out the worst cases).
    "spark.hadoop.fs.s3a.attempts.maximum": "3",
    "spark.hadoop.fs.s3a.retry.limit": "3",
    "spark.hadoop.fs.s3a.retry.interval": "500ms",
    # Throttling (503 SlowDown) backs off exponentially: 6 retries from 500 ms sleep at most
    # ~60 s in all per call (10 allowed ~17 min); the SDK's own 3 attempts come on top.
    "spark.hadoop.fs.s3a.retry.throttle.limit": "6",
    "spark.hadoop.fs.s3a.retry.throttle.interval": "500ms",
    "spark.hadoop.fs.s3a.connection.establish.timeout": "5s",
    "spark.hadoop.fs.s3a.connection.timeout": "30s",
}

DAEMON_MODULE = "spark.python.daemon.module"
TUNING = {
    # A few large partitions beat many tiny ones for per-task model warm-up; Spark still
    # splits into at least defaultParallelism partitions.
    "spark.sql.files.openCostInBytes": str(1 << 20),
    # An Arrow batch of 10k decoded images would be hundreds of MB; 256 keeps it bounded.
    # Sessions that featurize send smaller ones (featurize.arrow_batch_rows).
    "spark.sql.execution.arrow.maxRecordsPerBatch": "256",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.python.worker.reuse": "true",
    # Spark 4.0's worker re-reads pyspark's archives before every task (python_daemon.py).
    DAEMON_MODULE: python_daemon.__name__,
    "spark.sql.session.timeZone": "UTC",
}


LOOPBACK = "127.0.0.1"


SIMPLIFIED_TRACEBACK = "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled"
SIMPLIFIED_TRACEBACK_VARIABLE = "SPARK_SIMPLIFIED_TRACEBACK"


def launched_by_spark_submit() -> bool:
    # spark-submit runs the Python driver with a gateway to its own JVM already open.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def runs_locally(config: Config) -> bool:
    """Whether the work runs in this process's machine (a local[...] master), without starting
    a session: under spark-submit the submitted master is in its SparkConf already."""
    master = config.master
    if master is None and launched_by_spark_submit():
        from pyspark import SparkConf

        master = SparkConf().get("spark.master", "")
    return master is None or master.startswith("local")


def s3a_settings(config: Config) -> dict[str, str]:
    settings = {
        "spark.hadoop.fs.s3a.endpoint.region": config.region,
        **S3A_COMMITTER,
        **S3A_FAILURE_BOUNDS,
    }
    if config.s3_endpoint:
        settings["spark.hadoop.fs.s3a.endpoint"] = config.s3_endpoint
        settings["spark.hadoop.fs.s3a.path.style.access"] = "true"
        settings["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
            config.s3_endpoint.startswith("https")
        ).lower()
    if config.s3_anonymous:
        settings["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
            "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider"
        )
    elif config.s3_credentials_provider:
        settings["spark.hadoop.fs.s3a.aws.credentials.provider"] = config.s3_credentials_provider
    sse = config.effective_sse
    if sse == "kms":
        settings["spark.hadoop.fs.s3a.encryption.algorithm"] = "SSE-KMS"
        settings["spark.hadoop.fs.s3a.encryption.key"] = str(config.sse_kms_key)
    elif sse == "s3":
        settings["spark.hadoop.fs.s3a.encryption.algorithm"] = "AES256"  # = SSE-S3 in s3a
    return settings


# Spark lists a folder's subfolders with a Spark job of a task each once there are more than 32
# (a Fruits-360 split has more): in local mode those tasks run in the driver's JVM and do what
# the driver itself does in milliseconds, ~2 s of a 600-image run on a 2-core AMD EPYC in two
# jobs (bench/README.md, "Results"). An s3a input never takes that path: Spark 4 lists it with
# one recursive call (spark.sql.sources.useListFilesFileSystemList), which is no cure for local
# folders: 30 s against 1.2 s for 4 800 files on that machine.
DRIVER_LISTING = {"spark.sql.sources.parallelPartitionDiscovery.threshold": str(2**31 - 1)}


# The driver JVM that fruitlens starts collects with the serial collector, whatever the run's
# size (unless the user's own options name a collector: the JVM refuses to start with two). G1,
# the JVM's choice on 2 cores or more, marks and collects the heap in threads of its own, on the
# cores a local run's featurize workers need, and grows its heap toward spark.driver.memory
# (below) where the serial collector keeps it near what is live: the job streams, and little
# lives long. Alternated on 2-core machines (bench/README.md, Results): 600 images on a Zen 5,
# three pairs, 32.5-36.7 s against 33.4-40.1 s, 2.2-7.0 CPU-s less in each pair; 4 800 images on
# a Xeon, three pairs, 122.3-122.7 s against 124.6-125.8 s, 235.0-235.5 busy CPU-s against
# 240.4-241.5, the JVM's peak RSS 931-961 MB against 1 192-1 336 MB; the whole shared subset
# (16 798 images), one pair, 362.0 s against 369.8 s, the JVM 1.30 GB against 1.75 GB.
SERIAL_GC = "-XX:+UseSerialGC"
# A run of fewer input files than this also starts its driver JVM with C1 only; so does every
# run whose linear algebra is OpenBLAS (below).
#
# C2, the optimising compiler, makes the JVM's own code faster on a long run but spends tens of
# CPU-seconds compiling, on the cores a local run's featurize workers need. `fruitlens run
# --master local[2]` alternated on a 2-core AMD EPYC Zen 3 (bench/README.md), C1 only against
# C2: 600 images 75-80 s against 86-87 s (123-131 against 160-161 CPU-s); 1 200 images 112 s
# against 119 s; 2 400 images 176 s against 174 s, even.
#
# Above that, what C2 buys is the JVM's numerics (PCA's SVD, Spark ML's fits), and only while
# they run as Java code: Spark ML's netlib layer runs them in the machine's libblas.so.3 and
# liblapack.so.3 when it can load them, else in its Java translation. On a 2-vCPU Xeon without
# AMX, 4 800 images, alternated twice each (bench/README.md, Results, 2026-12-04): with netlib's
# Java code C1 only lost, 129.5 / 130.6 s against 123.5 / 121.4 s (training 18.1-18.3 s against
# 10.0-10.1 s, PCA 7.8-7.9 against 5.6-5.7 s), as the Zen 3 had at 2 420 images; with OpenBLAS
# (`make native-linalg`) it won, 117.0 / 117.6 s against 121.5 / 124.1 s and 20 CPU-s less, the
# training and PCA no slower, and on the whole shared subset (16 798 images) 359.7 s against
# 364.9 s. An AMD Zen 3, the same pairs (2026-12-05): with OpenBLAS 222.8 / 229.9 s against
# 236.5 / 237.5 s, PCA and training faster too. With Debian's reference BLAS and LAPACK, native
# but unoptimised, the machines disagree: the AMX Xeon had found C1 only slower above 2 000
# files (against C2 with G1, 2026-12-02), the Xeon without AMX and the Zen 3 faster (4 800
# images, the serial collector on both sides: 112.3 / 114.1 s against 121.8 / 120.8 s, and
# 235.5 / 245.1 s against 241.4 / 250.4 s): they keep the threshold until the AMX Xeon's pairs
# are repeated.
# C1 alone would shrink the code cache to 48 MiB, which Spark's generated code outgrows: the
# tiered 240 MiB is kept.
SMALL_RUN_BELOW_FILES = 2000
C1_ONLY = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
SMALL_RUN_JVM = f"{C1_ONLY} {SERIAL_GC}"
# A collector named in a user's own options.
_CHOSEN_GC = re.compile(r"-XX:\+Use\w+GC\b")
# The libraries netlib (dev.ludovic.netlib, Spark ML's BLAS and LAPACK) loads by these names;
# a user's own netlib properties in the options point it elsewhere.
NETLIB_LIBRARIES = ("libblas.so.3", "liblapack.so.3")
NETLIB = "dev.ludovic.netlib"  # the prefix of its system properties


def openblas_loads(libraries: tuple[str, ...] = NETLIB_LIBRARIES) -> bool:
    """Whether each library, found as the JVM's dynamic linker will find it (this process
    shares its environment), is OpenBLAS, which exports openblas_get_config (mk/linalg.mk
    installs it). Loading them here takes ~10 ms; OPENBLAS_NUM_THREADS (local_defaults) keeps
    OpenBLAS from starting threads in this process."""
    try:
        return all(hasattr(ctypes.CDLL(name), "openblas_get_config") for name in libraries)
    except OSError:  # not installed: netlib's Java translation
        return False


def driver_jvm_options(input_files: int | None, user_options: str, openblas: bool) -> str:
    """The driver JVM's options for a run of `input_files` (None: not known), beside the
    user's own spark.driver.extraJavaOptions, which come after them and win. `openblas`: the
    JVM's linear algebra will run in OpenBLAS (openblas_loads)."""
    small = input_files is not None and input_files < SMALL_RUN_BELOW_FILES
    native_numerics = openblas and f"-D{NETLIB}." not in user_options
    chosen = (C1_ONLY,) if small or native_numerics else ()
    if not _CHOSEN_GC.search(user_options):
        chosen += (SERIAL_GC,)
    return "".join(f" {option}" for option in chosen)


def chosen_settings(config: Config) -> dict[str, str]:
    """The user's own --spark-conf KEY=VALUE items, by key."""
    chosen = {}
    for item in config.spark_conf:
        key, _, value = item.partition("=")
        chosen[key.strip()] = value.strip()
    return chosen


def spark_settings(
    config: Config, input_files: int | None = None, featurizes: bool = False
) -> dict[str, str]:
    chosen = chosen_settings(config)  # applied last, so the user's win
    settings = {
        **TUNING,
        **(DRIVER_LISTING if runs_locally(config) else {}),
        **console.spark_settings(config.verbose),
        **s3a_settings(config),
        # Hadoop sets each file's mode itself (0644 by default), whatever the process umask.
        "spark.hadoop.fs.permissions.umask-mode": config.umask,
    }
    if featurizes:
        # Every featurize worker needs TensorFlow: imported once per executor, in the daemon
        # the workers are forked from (python_daemon.py). A session that only trains or scores
        # stored features would pay that import for nothing.
        settings[console.EXECUTOR_ENV + python_daemon.PRELOAD_TENSORFLOW] = "1"
        # Spark keys its Python daemons by the workers' environment, and its SQL runners add this
        # variable while Spark SQL's simplified tracebacks are on (the default): given to every
        # Python function, it lets the RDD job that starts the daemon early
        # (featurize.StartingWorkers) start the one the featurize UDF uses.
        if chosen.get(SIMPLIFIED_TRACEBACK, "true").strip().lower() == "true":
            settings[console.EXECUTOR_ENV + SIMPLIFIED_TRACEBACK_VARIABLE] = "1"
        # Here, not at the top: pipeline modules import pandas and NumPy, 0.5 s that every
        # command would pay before it can refuse its flags.
        from fruitlens.pipeline import featurize

        settings["spark.sql.execution.arrow.maxRecordsPerBatch"] = str(
            featurize.arrow_batch_rows(config.batch_size)
        )
        for name, value in featurize.WORKER_ENVIRONMENT.items():
            settings[console.EXECUTOR_ENV + name] = value
    if not launched_by_spark_submit():
        # The JVM starts with fruitlens's log4j2 file (no banner, no WARN lines by default) and
        # maps the recorded class archive when there is one (2 s less start-up). Spark's slot for
        # an installation's own options: the launcher puts a user's extraJavaOptions after them,
        # so `--spark-conf spark.driver.extraJavaOptions=...` adds to these, never drops them.
        settings["spark.driver.defaultJavaOptions"] = (
            console.java_options(config.verbose)
            + jvm_archive.java_options()
            + driver_jvm_options(
                input_files, chosen.get("spark.driver.extraJavaOptions", ""), openblas_loads()
            )
        )
        locked = jars.ensure_jars(config.jars_dir)
        # On the driver's class path, where a local run's executor is too: as spark.jars, every
        # session copied them (the SDK bundle is 558 MB) through its file server into its
        # scratch folder. Spark's launcher puts a user's spark.driver.extraClassPath after
        # these, and the class archive is recorded with them (jvm_archive).
        settings["spark.driver.defaultExtraClassPath"] = os.pathsep.join(
            str(jar) for jar in jars.driver_class_path(locked)
        )
        if not runs_locally(config):
            # Shipped to the cluster's executors, whose class loader for them asks Spark's first.
            settings["spark.jars"] = ",".join(str(jar) for jar in locked)
        # A fixed bound: the job streams (20 000 images pass in it, `make chaos`), and without
        # one the JVM's heap grows toward a quarter of the machine with the work it is given.
        settings["spark.driver.memory"] = "2g"
        settings["spark.local.dir"] = str(scratch_dir())
    settings.update(chosen)
    return settings


@contextmanager
def job_description(spark: SparkSession, text: str) -> Iterator[None]:
    """Name the Spark jobs run inside the block: the Spark UI lists them under this name and the
    event log records it (spark.job.description), so a stage's tasks can be found afterwards.
    A block inside another names its own jobs, and the outer name applies again after it."""
    context = spark.sparkContext
    outer = context.getLocalProperty("spark.job.description")
    context.setJobDescription(text)
    try:
        yield
    finally:
        context.setLocalProperty("spark.job.description", outer)  # type: ignore[arg-type]


def scratch_dir(pid: int | None = None) -> Path:
    """A local driver's spark.local.dir: shuffle files, spilled and cached blocks (features and
    paths of the images) and Spark's copies of the jars and weights. Spark deletes its folders
    there when the JVM stops, but a killed driver leaves them, hundreds of MB each, in a cache
    nothing else cleans. So each driver process has a folder of its own, named after its host
    and process id, and the next local session removes those whose process has ended."""
    return paths.cache_dir() / "spark-local" / f"{socket.gethostname()}-{pid or os.getpid()}"


def remove_scratch_of_ended_drivers() -> list[Path]:
    """Delete the scratch folders of this host's driver processes that no longer run. Only this
    host's: the cache may be shared (a mounted home), and another host's processes cannot be
    seen from here."""
    prefix = f"{socket.gethostname()}-"
    removed = []
    for folder in (paths.cache_dir() / "spark-local").glob(glob.escape(prefix) + "*"):
        pid = folder.name.removeprefix(prefix)
        if pid.isdecimal() and not process_runs(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            log.debug("removed %s, the scratch folder of a driver that has ended", folder)
            removed.append(folder)
    return removed


def process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        pass
    return True


def local_defaults() -> dict[str, str]:
    """Environment defaults the local JVM and its Python workers inherit from this process."""
    return {
        # Workers must run the driver's interpreter (the venv), not whatever python3 is on
        # PATH; pyspark reads only the environment variable for this, not spark.pyspark.python.
        "PYSPARK_PYTHON": sys.executable,
        # The JVM's task threads each make their own BLAS calls (Spark ML's PCA and
        # classifiers); a threaded OpenBLAS, which `make native-linalg` installs, would add
        # threads of its own to each: one per call, as Spark's ML linear algebra guide advises
        # (mk/linalg.mk).
        "OPENBLAS_NUM_THREADS": "1",
    }


def export_local_defaults() -> None:
    """local_defaults() into this process's environment; a user's own value wins."""
    for name, value in local_defaults().items():
        os.environ.setdefault(name, value)


def standby_daemon(settings: dict[str, str]) -> dict[str, str]:
    """For a local session whose daemon preloads TensorFlow: start a standby daemon now, before
    the JVM, and return the setting that tells the daemon the JVM launches where it is
    (python_daemon.py, part 5). Empty for other sessions."""
    preloads = settings.get(console.EXECUTOR_ENV + python_daemon.PRELOAD_TENSORFLOW) == "1"
    if not preloads or settings.get(DAEMON_MODULE) != python_daemon.__name__:
        return {}
    environment = {
        **os.environ,
        # What Spark gives every Python worker besides spark.executorEnv: pyspark's SparkContext
        # sets the hash seed, Spark's Python runner a task's OpenMP threads and unbuffered
        # output. A Spark that changes them makes the standby refuse (python_daemon.refusal),
        # and its daemon imports TensorFlow itself.
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0"),
        "OMP_NUM_THREADS": settings.get("spark.task.cpus", "1"),
        "PYTHONUNBUFFERED": "YES",
        **{
            key.removeprefix(console.EXECUTOR_ENV): value
            for key, value in settings.items()
            if key.startswith(console.EXECUTOR_ENV)
        },
    }
    python = os.environ.get("PYSPARK_PYTHON", sys.executable)
    try:
        address = python_daemon.start_standby(environment, python)
    except OSError as exc:  # the daemon will import TensorFlow itself
        log.debug("no standby daemon: %s", exc)
        return {}
    return {console.EXECUTOR_ENV + python_daemon.STANDBY: address}


def start_session(
    config: Config,
    app_name: str = "fruitlens",
    input_files: int | None = None,
    featurizes: bool = False,
) -> SparkSession:
    """The session for a command; `input_files`, when the command has listed its input, lets
    a small run's JVM start with C1 only (driver_jvm_options); `featurizes`: the command runs
    images through VGG16, so its Python workers start with TensorFlow."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    if not launched_by_spark_submit():
        export_local_defaults()
        remove_scratch_of_ended_drivers()
    existing = SparkConf()  # under spark-submit this already holds the submitted settings
    options = {"spark.app.name": app_name}
    master = config.master or (None if launched_by_spark_submit() else "local[*]")
    if master:
        options["spark.master"] = master
    local = bool(master and master.startswith("local"))
    if local:
        # Outside a cluster nothing needs to reach the driver from another machine: the UI
        # (which binds SPARK_LOCAL_IP, else every interface) and the RPC stay on loopback.
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
    explicit = chosen_settings(config).keys()
    settings = spark_settings(config, input_files, featurizes)
    if local and SparkSession.getActiveSession() is None:  # a JVM yet to start
        settings.update(standby_daemon(settings))
    for key, value in settings.items():
        if key in explicit or not existing.contains(key):
            options[key] = value
    # What SparkSession.builder.getOrCreate does, in two steps (keeping_interrupt_handler).
    keeping_interrupt_handler(lambda: SparkContext.getOrCreate(SparkConf().setAll(options.items())))
    spark = SparkSession.builder.config(map=options).getOrCreate()
    # Under spark-submit the JVM was started with the image's log4j2 set-up: the level is
    # applied from here on (a local JVM already has it).
    spark.sparkContext.setLogLevel(console.LOG4J_LEVELS[console.level(config.verbose)].upper())
    return spark


def keeping_interrupt_handler(create: Callable[[], SparkContext]) -> SparkContext:
    """`create()` (a SparkContext), with the SIGINT handler in place before it put back (the
    command line's, cli.StopSparkOnInterrupt), and a Ctrl-C during it held until then.

    A new SparkContext installs its own, which cancels the jobs through the main thread's py4j
    connection: while a job runs, that connection is waiting for it, so py4j fails ("reentrant
    call"), logs two tracebacks, and the command ends on that error (SPARK-55404, after 4.0,
    raises KeyboardInterrupt all the same, from the middle of the call). The context is
    created alone, before its session, so that the main thread makes no py4j call between
    pyspark's handler and ours: a Ctrl-C there finds the connection free, and pyspark's
    cancels nothing and raises KeyboardInterrupt, which the command line reports the same.

    Held, because interrupting pyspark's launch of the JVM leaves that JVM running for good:
    the launch removes the folder the JVM writes its port into, and the JVM's py4j server
    thread outlives its failed main (seen at 2.6 s into a run). Then KeyboardInterrupt, with
    no py4j call under way: the command ends, and the JVM with it. A second Ctrl-C is not held.
    """
    if threading.current_thread() is not threading.main_thread():  # only there can it change
        return create()
    handler = signal.getsignal(signal.SIGINT)
    hold = HeldInterrupt()
    signal.signal(signal.SIGINT, hold)
    try:
        return create()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if handler is None else handler)
        if hold.held:
            raise KeyboardInterrupt


class HeldInterrupt:
    """A SIGINT handler that notes the first Ctrl-C and acts on the second."""

    def __init__(self) -> None:
        self.held = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.held:
            raise KeyboardInterrupt
        self.held = True


def release_cached() -> None:
    """Drop every table the command that just ended cached, if a session is running.

    Cached tables (the features, the PCA projection, the scored Test images) serve one command.
    A process that runs several in one session, the test tier or a notebook, would otherwise
    keep them all: they fill the driver's heap until the JVM spends its time collecting.
    """
    if "pyspark" not in sys.modules:  # the command started no Spark (sanitize, retention)
        return
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        return
    spark.catalog.clearCache()
    # Local checkpoints (the stored features of --incremental) are blocks the catalog never saw.
    for rdd in spark.sparkContext._jsc.getPersistentRDDs().values():
        rdd.unpersist(False)
