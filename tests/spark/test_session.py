"""What the job's session settings give its Python workers, seen from inside a task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

pytestmark = [pytest.mark.spark]


def test_python_workers_run_under_the_fruitlens_daemon(spark: SparkSession):
    def watcher(_: Iterator[int]) -> Iterator[str]:
        from pyspark import worker_util

        invalidate = worker_util.importlib.invalidate_caches
        yield type(getattr(invalidate, "__self__", None)).__name__

    # Several tasks, so the reused worker's later tasks are seen too.
    found = spark.sparkContext.parallelize(range(6), 6).mapPartitions(watcher).collect()
    assert found == ["PathWatch"] * 6
