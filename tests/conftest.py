"""Shared fixtures: a real S3 server on loopback, Fruits-360 slices, seeded weights, a CLI runner.

Nothing here is a mock: the S3 server is moto's standalone HTTP server, spoken to by s3a (Java)
and boto3 over TCP; Spark and TensorFlow are the real ones.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd

REPO = Path(__file__).resolve().parents[1]
REGION = "eu-west-3"


def dataset_root() -> Path:
    default = REPO.parent / "shared" / "datasets" / "fruits360"
    return Path(os.environ.get("FRUITLENS_DATASET", default))


@pytest.fixture(scope="session")
def fruits360() -> Path:
    root = dataset_root()
    if not (root / "Training").is_dir():
        pytest.skip(
            f"Fruits-360 subset not found at {root}; set FRUITLENS_DATASET to a folder with "
            "Training/ and Test/ to run this test"
        )
    return root


def copy_slice(
    source: Path, target: Path, per_class: dict[str, int], classes: int | None = None
) -> Path:
    """Copy the first N images of each class of each split (sorted, so the slice is stable)."""
    for split, count in per_class.items():
        class_dirs = sorted(p for p in (source / split).iterdir() if p.is_dir())
        for class_dir in class_dirs[:classes]:
            destination = target / split / class_dir.name
            destination.mkdir(parents=True, exist_ok=True)
            for image in sorted(class_dir.iterdir())[:count]:
                shutil.copyfile(image, destination / image.name)
    return target


@pytest.fixture(scope="session")
def small_slice(fruits360: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 classes x (8 Training + 4 Test) images: enough for every stage, fast to featurize."""
    return copy_slice(fruits360, tmp_path_factory.mktemp("slice"), {"Training": 8, "Test": 4}, 6)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class FileServer:
    """A folder served over plain HTTP on loopback, standing in for Maven Central or GitHub."""

    root: Path
    url: str
    requested: list[str]  # the path of every GET, in order


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FileServer(root, f"http://127.0.0.1:{server.server_address[1]}", requested)
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}),
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        return name

    def upload_tree(self, folder: Path, bucket: str, prefix: str) -> int:
        client = self.client()
        count = 0
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                key = f"{prefix}/{path.relative_to(folder).as_posix()}"
                client.upload_file(str(path), bucket, key)
                count += 1
        return count


def start_moto(port: int) -> subprocess.Popen[bytes]:
    """moto's standalone server in its own process, so a test can stop and restart it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"moto server did not start on port {port}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    # The standard credential chain reads these; moto accepts any key. They are not secrets.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ["AWS_REGION"] = REGION
    os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    port = free_port()
    process = start_moto(port)
    yield S3Server(f"http://127.0.0.1:{port}", process)
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


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> CliResult:
    """The installed console script in a subprocess, exactly as a user runs it."""
    command = [sys.executable, "-m", "fruitlens", *args]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def jpeg_bytes(
    colour: tuple[int, int, int] = (200, 30, 30), size: int = 64, **save: object
) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def rows(frame: pd.DataFrame) -> list[tuple]:
    """A dataset's rows as plain tuples (ML vectors as tuples of floats), for exact equality."""

    def plain(value):
        if isinstance(value, dict):
            return tuple((key, plain(item)) for key, item in sorted(value.items()))
        if hasattr(value, "tolist"):
            return tuple(value.tolist()) if hasattr(value, "__len__") else value.tolist()
        return value

    return [tuple(plain(value) for value in row) for row in frame.itertuples(index=False)]
