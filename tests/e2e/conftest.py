"""The e2e tier: fruitlens as a process, as a user starts it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import jvm


@pytest.fixture(scope="session", autouse=True)
def _small_run_driver_jvms() -> Iterator[None]:
    """Every fruitlens process the tier starts has a small run's JVM options (support.jvm),
    set through the channel a user has, the setting's own variable. A test that passes
    --spark-conf itself replaces it, as a flag replaces the environment, so such a test passes
    the options again (support.jvm.DRIVER_FLAGS)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FRUITLENS_SPARK_CONF", jvm.DRIVER_OPTIONS)
        yield
