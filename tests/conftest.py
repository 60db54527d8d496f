"""Fixtures only (helpers live in tests/support/): the Fruits-360 slices, a real S3 server on
loopback, seeded weights, and ONE in-process Spark session for the whole test process.

Nothing here is a mock: the S3 server is moto's standalone HTTP server, spoken to by s3a (Java)
and boto3 over TCP; Spark and TensorFlow are the real ones. Every fixture that changes the
environment puts it back.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support import jvm, s3
from support.http import FileServer
from support.net import free_port
from support.paths import copy_slice, dataset_root

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def fruits360() -> Path:
    root = dataset_root()
    if not (root / "Training").is_dir():
        pytest.skip(
            f"Fruits-360 subset not found at {root}; set FRUITLENS_DATASET to a folder with "
            "Training/ and Test/ to run this test"
        )
    return root


@pytest.fixture(scope="session")
def small_slice(fruits360: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 classes x (8 Training + 4 Test) images: enough for every stage, fast to featurize."""
    return copy_slice(fruits360, tmp_path_factory.mktemp("slice"), {"Training": 8, "Test": 4}, 6)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    """A folder served over plain HTTP on loopback, standing in for Maven Central or GitHub."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import unquote

    root = tmp_path / "served"
    root.mkdir()
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            requested.append(unquote(self.path))

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
    # shutdown() waits for serve_forever's next poll: 0.5 s by default, at every teardown.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield FileServer(root, f"http://127.0.0.1:{server.server_address[1]}", requested)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def s3_environment() -> Iterator[None]:
    """The client settings for moto, for the whole session; the previous values come back."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in s3.CLIENT_ENVIRONMENT.items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="session")
def s3_server(s3_environment: None) -> Iterator[s3.S3Server]:
    process = s3.start_moto(free_port())
    port = process.args[-1]
    yield s3.S3Server(f"http://127.0.0.1:{port}", process)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def seeded_weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights FILE made by the project (seeded init), fed through the file-loading path."""
    from fruitlens import weights

    source = weights.seeded_weights_file(0)
    target = tmp_path_factory.mktemp("weights") / "vgg16-seeded-0.weights.h5"
    shutil.copyfile(source, target)
    return target


@pytest.fixture(scope="session")
def spark(s3_server: s3.S3Server) -> Iterator[SparkSession]:
    """One local[1] session per test process, as Spark's own test suites keep one.

    It is built by fruitlens.session from a Config, so its jars, s3a and committer settings are
    the job's own, with the endpoint of the session's S3 server. Commands called in this process
    get this session back from start_session (getOrCreate), so they never start a second JVM.
    """
    from fruitlens import session
    from fruitlens.config import Config

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
        # start_session sets these defaults for its workers; the fixture owns them and undoes.
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        for name, value in session.local_defaults().items():
            patch.setenv(name, value)
        # As Spark's own test sessions: few shuffle partitions for tiny data, no progress bar
        # in the captured output. Everything else is the job's, the UI included: a test checks
        # that it listens on loopback only.
        test_only = [
            "spark.sql.shuffle.partitions=2",
            "spark.ui.showConsoleProgress=false",
            jvm.DRIVER_OPTIONS,  # a small run's JVM: the tier runs a thousand tiny jobs once each
            # Those jobs see a few rows each, and Janino compiling their generated Java was a
            # tenth of the tier's JVM samples (JFR): interpreted, they cost less than compiled.
            # Both paths give the same rows (Spark's own suites check each expression both
            # ways); the e2e tier's commands and the cluster run keep the job's codegen.
            # factoryMode is the switch Spark's tests use for it.
            "spark.sql.codegen.wholeStage=false",
            "spark.sql.codegen.factoryMode=NO_CODEGEN",
        ]
        config = Config(
            master="local[1]", s3_endpoint=s3_server.endpoint, spark_conf=test_only
        ).validate()
        started = session.start_session(config, "fruitlens-tests")
        yield started
        started.stop()


TIERS = ("unit", "spark", "e2e", "deploy")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its tier's marker, taken from its folder: `-m unit`, `-m "not e2e"`."""
    for item in items:
        tier = item.path.parent.name
        if tier in TIERS:
            item.add_marker(tier)
