"""A real S3 server (moto's standalone HTTP server) on a loopback port, and a boto3 client to it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.net import wait_for_port

REGION = "eu-west-3"

# The standard credential chain reads these; moto accepts any key. They are not secrets.
# The checksum settings keep botocore >= 1.36 from sending trailers moto's server rejects.
CLIENT_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": REGION,
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


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


# `python -m moto.server`, less a fixed cost per request: moto's dispatcher lists its own ~160
# service folders (`backends.list_of_moto_modules`, a listdir and an isdir each) for every
# request, to see whether the Host header names one. The list is read once here instead. 1 200
# S3 requests, alternated: 4.6-5.2 moto CPU-s as `-m moto.server`, 2.2-3.2 this way (py-spy had
# put 9-10 CPU-s of a warm `make test` in that scan).
MOTO_SERVER = """
import sys
from moto import backends
modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = lambda: modules
from moto.server import main
main(sys.argv[1:])
"""


def start_moto(port: int) -> subprocess.Popen[bytes]:
    """moto's standalone server in its own process, so a test can stop and restart it."""
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process, "moto server")
    return process
