"""The Spark tier: every test here runs with the one in-process session already started, so the
commands its tests call in-process (support.cli.invoke) find it and reuse it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import fakes


@pytest.fixture(scope="session", autouse=True)
def _one_session_for_the_tier(spark):
    # Session scope and autouse: started before any module fixture that runs a command.
    return spark


@pytest.fixture(autouse=True)
def _empty_cache_after_each_test(spark) -> Iterator[None]:
    """What a test cached is dropped after it, as Spark's own shared-session suites do: the
    stage functions called here persist their tables for the command that would follow, and a
    session-long pile of them fills the driver's heap."""
    yield
    from fruitlens import session

    session.release_cached()


@pytest.fixture(scope="module", autouse=True)
def _stand_in_network(request: pytest.FixtureRequest) -> Iterator[None]:
    """Whole commands in this tier featurize with the stand-in network (support.fakes): what
    they check is the job around the network, and VGG16 costs its workers seconds to build and
    seconds per hundred images on 2 cores. Modules marked `vgg16` get the real network, which
    is checked there, in Spark and against the model run in the driver."""
    if request.node.get_closest_marker("vgg16"):
        yield
    else:
        with fakes.stand_in_network():
            yield
