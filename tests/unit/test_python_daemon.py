"""The Python worker daemon's one change to Spark 4.0's worker: import caches are dropped only
when the worker's path changed (fruitlens.python_daemon)."""

from __future__ import annotations

import importlib
import sys

import pytest

from fruitlens.python_daemon import PathWatch


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
