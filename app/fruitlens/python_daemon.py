"""Spark's Python worker daemon (`pyspark.daemon`), less three fixed costs in every worker.

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

It is set as `spark.python.daemon.module` (session.TUNING), so the driver's local workers and
every executor's run it. Drop parts 1-3 once the Spark pin carries their fixes; part 4 is
fruitlens's own (Spark's daemon imports no library of the job's).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from importlib.machinery import PathFinder
from types import SimpleNamespace

# Set to "1" in the workers' environment (spark.executorEnv) by sessions that featurize.
PRELOAD_TENSORFLOW = "FRUITLENS_PRELOAD_TENSORFLOW"
# What the daemon logs when that import fails: an executor without TensorFlow serves anyway.
NOT_PRELOADED = "fruitlens daemon: TensorFlow not preloaded"


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


def main() -> None:
    sys.path[:] = unpacked_pyspark_first(sys.path, os.environ.get("SPARK_HOME", ""))
    # Imported only now, from where the line above chose.
    from pyspark import daemon, worker_util

    # daemon and worker_util look `gc` and `importlib` up at each call and use them for
    # nothing else. The workers are forked from this process, so each starts with these.
    watch = PathWatch()
    worker_util.importlib = SimpleNamespace(invalidate_caches=watch.invalidate_caches)  # type: ignore[assignment]
    daemon.gc = CollectThenFreeze  # type: ignore[assignment]
    if os.environ.get(PRELOAD_TENSORFLOW) == "1":
        preload_tensorflow()
    daemon.manager()


if __name__ == "__main__":
    main()
