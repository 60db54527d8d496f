"""Spark's Python worker daemon (`pyspark.daemon`), with six changes: parts 1-3 remove fixed costs
of every worker, 4-5 import TensorFlow ahead of the workers, 6 quiets a hung-up worker.

1. Spark puts `$SPARK_HOME/python/lib/pyspark.zip` first on its workers' path. Modules
   imported from a zip archive are compiled at every start (zipimport keeps no bytecode cache),
   and each package imported from it gets its own importer holding the archive's directory.
   When the same Spark installation also holds pyspark unpacked (pip's pyspark, or a
   distribution's `python/` folder on PYTHONPATH), the archive is moved behind it, so the
   daemon imports the same code from cached bytecode.
2. Before each task, Spark 4.0's worker calls `importlib.invalidate_caches()`
   (`pyspark.worker_util.setup_spark_files`). Since Python 3.10 that makes every zip importer
   read its archive's whole directory again, at once (CPython gh-103200, made lazy later):
   150-200 ms of every Python task on a 2-core AMD EPYC, most of a small task's time
   (bench/README.md, "Profile and tuning"). Spark's own fix (SPARK-54744, after 4.0)
   invalidates only when the task put a new folder or archive on the path; `PathWatch` is that
   fix for Spark 4.0.
3. After each task a reused worker runs a full `gc.collect()`, which walks every object the
   worker holds: with TensorFlow imported, some 0.2 CPU-s a task. `CollectThenFreeze` moves what
   survives into the permanent generation, so the next collection walks only what later tasks
   made.
4. Each featurize worker imported Keras and TensorFlow itself: 3-7 s of a 2-vCPU Xeon's core
   per worker, paid again by every worker of every executor, two at once on two cores. When
   the session sets PRELOAD_TENSORFLOW (featurizing commands do: session.spark_settings), the
   daemon imports them once, before it forks any worker, and each worker starts with them
   loaded (copy-on-write: their pages are shared, not copied). Importing runs no TensorFlow
   op, so no thread pool nor device exists yet to be lost in the fork: each worker still
   sets its own thread counts and builds its own model (featurize._build_model). The daemon
   starts with the session, not at the first featurize task (featurize.StartingWorkers), so
   that import runs while the driver starts Spark SQL and lists the input.

5. In local mode that import still came late: the JVM launches its daemon at the first Python
   task, some 4 s after the command started, and the featurize job then waited 3.3 s for the
   import (the event log of a 600-image run on a 2-vCPU AMD EPYC Zen 4). So a local featurizing
   session starts a *standby* first (`start_standby`, from session.start_session, before the
   JVM), which imports TensorFlow while the JVM starts. The process the JVM launches hands its
   standard streams and environment over a Unix socket to the standby, which becomes the
   daemon from there (`serve`); the launched process stays as the one the JVM knows, passes
   SIGTERM on and ends with it. The driver listens on that socket before it starts the
   standby, so a daemon launched at any time waits for the import. The standby refuses (and
   the launched process imports TensorFlow itself, as before) when its environment or its
   modules differ from what the daemon would have had (`refusal`). On that machine, 600
   images, `local[2]`, alternated (without it first): bf16, five pairs, featurize stage
   11.8-12.4 s against 13.6-14.1 s, the whole run 26.7-28.1 s against 27.2-28.6 s; fp32, three
   pairs, 19.4-20.0 s against 21.3-21.9 s, the run 33.8-35.1 s against 35.0-36.7 s; busy CPU
   equal, the same k and accuracy (bench/README.md, Profile and tuning, "A local run's daemon
   is a standby"; the PCA CSV's last bits vary from run to run, see docs/OPERATIONS.md). The
   run gains less than the stage: on two cores the standby's import competes with the JVM's
   start, where the daemon's used to leave a core idle while the featurize job waited for it
   (not measured: a machine with cores to spare).

6. When a job ends while the JVM is starting a worker (a failed task aborts the job, or
   Ctrl-C stops Spark), the JVM may close the new worker's connection before it sends the
   worker its secret. Spark's daemon then printed that worker's EOFError traceback (14 lines)
   on the job's standard error, above the command's one-line failure (seen in one of four runs
   whose input file was deleted mid-run). `quiet_when_hung_up` ends such a worker without it.

It is set as `spark.python.daemon.module` (session.TUNING), so the driver's local workers and
every executor's run it. Drop parts 1-3 once the Spark pin carries their fixes; parts 4-6 are
fruitlens's own (Spark's daemon imports no library of the job's).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from importlib.machinery import PathFinder
from types import ModuleType, SimpleNamespace

# Set to "1" in the workers' environment (spark.executorEnv) by sessions that featurize.
PRELOAD_TENSORFLOW = "FRUITLENS_PRELOAD_TENSORFLOW"
# What the daemon logs when that import fails: an executor without TensorFlow serves anyway.
NOT_PRELOADED = "fruitlens daemon: TensorFlow not preloaded"
# The standby's socket, in the environment the JVM gives its daemon (spark.executorEnv).
STANDBY = "FRUITLENS_STANDBY_DAEMON"
TOOK_OVER = "fruitlens daemon: the standby that imported TensorFlow serves"
NOT_TAKEN_OVER = "fruitlens daemon: importing TensorFlow itself, the standby refused"
# Variables the JVM sets for each daemon it launches: Spark's worker protocol, which the daemon
# and its workers read after the hand-over, from the environment they are then given.
# PYTHONPATH is checked where it matters, module by module (refusal).
LAUNCH_VARIABLES = ("SPARK_", "PYTHON_", "_PYSPARK_", "PYTHONPATH", STANDBY)


def unpacked_pyspark_first(path: list[str], spark_home: str) -> list[str]:
    """`path` with Spark's pyspark.zip moved last, when the same `spark_home` also holds
    pyspark unpacked somewhere on `path`; otherwise `path` unchanged."""
    spark_home = os.path.realpath(spark_home)
    archive = os.path.join(spark_home, "python", "lib", "pyspark.zip")
    archives = [entry for entry in path if os.path.realpath(entry) == archive]
    rest = [entry for entry in path if entry not in archives]
    unpacked = PathFinder.find_spec("pyspark", rest) if archives else None
    if unpacked is None or not (unpacked.origin or "").startswith(spark_home + os.sep):
        return path
    return rest + archives


class PathWatch:
    """Stands for `importlib` in pyspark.worker_util: the import caches are dropped only when
    sys.path has changed since they were last dropped (the worker's first task, and any task
    that ships a new --py-files archive)."""

    def __init__(self) -> None:
        self.path_when_invalidated: list[str] | None = None

    def invalidate_caches(self) -> None:
        if sys.path != self.path_when_invalidated:
            importlib.invalidate_caches()
            self.path_when_invalidated = list(sys.path)


class CollectThenFreeze:
    """Stands for `gc` in pyspark.daemon, which calls only `gc.collect()`, between tasks."""

    @staticmethod
    def collect() -> int:
        found = gc.collect()
        # What outlives a task (modules, the cached model) outlives the worker too; cycles
        # among it that die later stay until the worker ends, instead of every task paying
        # to walk it all.
        gc.freeze()
        return found


def preload_tensorflow() -> None:
    """Import Keras and TensorFlow in the daemon, at the workers' verbosity."""
    from fruitlens import console

    # The daemon's standard output is its channel to the JVM (it writes its port there first):
    # whatever an import prints, from Python or native code, goes to standard error instead.
    sys.stdout.flush()
    channel = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            console.quiet_tensorflow()
    except ImportError as exc:  # an executor without TensorFlow: the worker that needs it says so
        print(f"{NOT_PRELOADED}: {exc}", file=sys.stderr)
    finally:
        os.dup2(channel, 1)
        os.close(channel)
    # Frozen before the fork: the workers' collections never touch (and so never copy) them.
    gc.collect()
    gc.freeze()


def start_standby(environment: Mapping[str, str], python: str) -> str:
    """Start a standby daemon with `environment` (the one the JVM will give its daemon, less
    the launch variables) and return its socket's path. It waits for the daemon the JVM
    launches, then serves as it or refuses and ends; or it ends with this process (its standard
    input is this end of a pipe). OSError where the socket cannot be made."""
    folder = tempfile.mkdtemp(prefix="fruitlens-daemon-")  # private: mode 0700
    address = os.path.join(folder, "standby")
    try:
        # Listening before this returns: a daemon launched at once finds it, however slowly
        # the standby's interpreter starts.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(address)  # OSError: a path too long for a socket's (a deep TMPDIR)
            listener.listen(1)
            standby = subprocess.Popen(
                [python, "-m", __name__, "--standby", str(listener.fileno())],
                env=dict(environment),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                pass_fds=[listener.fileno()],
            )
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    atexit.register(standby.stdin.close)  # type: ignore[union-attr]
    return address


def stand_by(listening: int) -> None:
    """The standby, given the socket it listens on: import TensorFlow, wait for the daemon the
    JVM launches, serve as it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver's Ctrl-C is the driver's to handle
    own_environment = dict(os.environ)  # before TensorFlow's import adds variables of its own
    listener = socket.socket(fileno=listening)
    address = listener.getsockname()
    try:
        preload_tensorflow()  # a daemon that connects meanwhile waits
        # Standard input ends when the driver does.
        if listener not in select.select([listener, sys.stdin], [], [])[0]:
            return
        connection, _ = listener.accept()
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(address)
            os.rmdir(os.path.dirname(address))
    # The streams come with the message's first bytes; the rest follows until the launched
    # process stops writing.
    try:
        message, streams, _, _ = socket.recv_fds(connection, 1 << 16, 3)
        while more := connection.recv(1 << 16):
            message += more
        launched = json.loads(message)
    except (OSError, ValueError):  # the launched process ended before it had said it all
        return
    why = refusal(own_environment, launched["environment"], launched["path"], sys.modules)
    if why:
        connection.sendall(json.dumps({"refused": why}).encode() + b"\n")
        return
    # Nothing this process has buffered may reach the JVM, which reads a port first.
    sys.stdout.flush()
    sys.stderr.flush()
    for number, stream in enumerate(streams):
        os.dup2(stream, number)
        os.close(stream)
    os.environ.clear()
    os.environ.update(launched["environment"])
    sys.argv[:] = launched["argv"]
    connection.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
    # The connection stays open in this process and the workers it forks: the launched process
    # waits for it to close.
    serve(launched["path"], preloaded=True)


def refusal(
    own: Mapping[str, str],
    launched: Mapping[str, str],
    path: list[str],
    modules: Mapping[str, ModuleType],
) -> str | None:
    """Why the standby, started with environment `own` and holding `modules`, must not serve a
    daemon launched with environment `launched` and import path `path`; None when it may."""
    names = {
        name
        for name in own.keys() | launched.keys()
        if name != "_" and not name.startswith(LAUNCH_VARIABLES)
    }
    differing = sorted(name for name in names if own.get(name) != launched.get(name))
    if differing:
        return "its environment differs in " + ", ".join(differing)
    elsewhere = sorted(
        name
        for name, module in list(modules.items())
        if "." not in name and imported_from(module, name) not in (None, found_on(name, path))
    )
    if elsewhere:
        return "the daemon's path finds these modules elsewhere: " + ", ".join(elsewhere)
    return None


def imported_from(module: ModuleType, name: str) -> str | None:
    """The file `module` was imported from as `name`; None for built-in and frozen modules,
    and for modules filed under another name (__main__, extension modules' aliases)."""
    spec = getattr(module, "__spec__", None)
    if spec is None or spec.name != name or not spec.has_location:
        return None
    return spec.origin


def found_on(name: str, path: list[str]) -> str | None:
    """Where `path` finds the module `name` (None: not there, built in, or frozen)."""
    spec = PathFinder.find_spec(name, path)
    return spec.origin if spec is not None and spec.has_location else None


def taken_over_by_standby(path: list[str]) -> bool:
    """In the process the JVM launched: hand this daemon's streams to the session's standby, and
    return once the daemon it became has ended. False where there is none, or it refused."""
    address = os.environ.get(STANDBY)
    if not address:
        return False
    launched = json.dumps({"environment": dict(os.environ), "path": path, "argv": sys.argv})
    message = launched.encode()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(address)
        sent = socket.send_fds(connection, [message], [0, 1, 2])
        connection.sendall(message[sent:])
        connection.shutdown(socket.SHUT_WR)
        reply = json.loads(connection.makefile("rb").readline() or b'{"refused": "it ended"}')
    except OSError:  # ended, or another daemon of the session took it over first
        return False
    from fruitlens import console

    if "refused" in reply:
        if console.workers_level() >= console.WARNINGS:
            print(f"{NOT_TAKEN_OVER}: {reply['refused']}", file=sys.stderr)
        return False
    if console.workers_level() == console.EVERYTHING:
        print(f"{TOOK_OVER} (pid {reply['pid']})", file=sys.stderr)
    daemon = reply["pid"]

    def pass_on(*_: object) -> None:  # the JVM stops its daemon with SIGTERM, to this process
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon, signal.SIGTERM)

    signal.signal(signal.SIGTERM, pass_on)
    connection.recv(1)  # returns when the daemon and its workers have ended
    return True


def quiet_when_hung_up(worker: Callable[[socket.socket, bool], int]) -> Callable[..., int]:
    """pyspark's `daemon.worker`, ending with status 1 and no traceback when the JVM closed the
    connection before sending the worker's secret (part 6). Only that read can raise EOFError
    out of `worker`: a task's reads are inside the worker's own handling, which reports to the
    JVM and exits."""

    def serve_worker(sock: socket.socket, authenticated: bool) -> int:
        try:
            return worker(sock, authenticated)
        except EOFError:
            return 1

    return serve_worker


def serve(path: list[str], preloaded: bool) -> None:
    """Run Spark's daemon in this process, from import path `path`."""
    sys.path[:] = path
    # Imported only now, from where `path` says.
    from pyspark import daemon, worker_util

    # daemon and worker_util look `gc` and `importlib` up at each call and use them for
    # nothing else. The workers are forked from this process, so each starts with these.
    watch = PathWatch()
    worker_util.importlib = SimpleNamespace(invalidate_caches=watch.invalidate_caches)  # type: ignore[assignment]
    daemon.gc = CollectThenFreeze  # type: ignore[assignment]
    daemon.worker = quiet_when_hung_up(daemon.worker)
    if os.environ.get(PRELOAD_TENSORFLOW) == "1" and not preloaded:
        preload_tensorflow()
    daemon.manager()


def main() -> None:
    if sys.argv[1:2] == ["--standby"]:
        stand_by(int(sys.argv[2]))
        return
    path = unpacked_pyspark_first(sys.path, os.environ.get("SPARK_HOME", ""))
    if not taken_over_by_standby(path):
        serve(path, preloaded=False)


if __name__ == "__main__":
    main()
