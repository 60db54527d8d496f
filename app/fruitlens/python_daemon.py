"""Spark's Python worker daemon (`pyspark.daemon`), less a fixed cost in every task.

Before each task, Spark 4.0's worker calls `importlib.invalidate_caches()`
(`pyspark.worker_util.setup_spark_files`). Since Python 3.10 that makes every zip importer
read its archive's whole directory again, at once (CPython gh-103200, made lazy later). A
worker's path holds pyspark.zip, py4j's zip and the spark-core jar, with one importer per
package imported from them: some 26 000 directory entries, 150-200 ms of every Python task on a
2-core AMD EPYC, which is most of a small task's time (bench/README.md, "Profile and tuning").

Spark's own fix (SPARK-54744, after 4.0) invalidates only when the task put a new folder or
archive on the path; this module is that fix for Spark 4.0. It is set as
`spark.python.daemon.module` (session.TUNING), so the driver's local workers and every
executor's run it. Drop it once the Spark pin carries the fix.
"""

from __future__ import annotations

import importlib
import sys
from types import SimpleNamespace

from pyspark import daemon, worker_util


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


def main() -> None:
    # worker_util looks `importlib` up at each call and uses it for nothing else. The workers
    # are forked from this process, so each starts with this in place.
    watch = PathWatch()
    worker_util.importlib = SimpleNamespace(invalidate_caches=watch.invalidate_caches)  # type: ignore[assignment]
    daemon.manager()


if __name__ == "__main__":
    main()
