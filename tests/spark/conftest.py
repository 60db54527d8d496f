"""The Spark tier: every test here runs with the one in-process session already started, so the
commands its tests call in-process (support.cli.invoke) find it and reuse it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_session_for_the_tier(spark):
    # Session scope and autouse: started before any module fixture that runs a command.
    return spark
