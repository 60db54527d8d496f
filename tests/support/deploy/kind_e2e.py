"""`make kind-e2e`, after the cluster, image and overlay are up: seed the in-cluster S3 with a
slice of Fruits-360, submit the SparkApplication, and check the committed output.

    PYTHONPATH=tests python -m support.deploy.kind_e2e --manifest out/kind/manifests.yaml \
        --dataset DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
from botocore import UNSIGNED
from botocore.config import Config

from fruitlens import cli
from support.net import free_port, wait_for_port

BUCKET = "fruitlens"


def port_forward(namespace: str, port: int) -> subprocess.Popen[bytes]:
    """The moto Service on 127.0.0.1: the host reaches it the way an operator's laptop would."""
    kubectl = shutil.which("kubectl") or "kubectl"
    proc = subprocess.Popen(
        [kubectl, "-n", namespace, "port-forward", "svc/s3", f"{port}:5000"],
        stdout=subprocess.DEVNULL,
    )
    wait_for_port(port, proc, "kubectl port-forward to svc/s3")
    return proc


def seed(s3: object, dataset: Path, classes: int, per_class: int) -> int:
    """A few classes of Training/ and Test/, so the run is minutes, not hours, on a laptop."""
    count = 0
    for split in ("Training", "Test"):
        for folder in sorted((dataset / split).iterdir())[:classes]:
            for image in sorted(folder.glob("*.jpg"))[:per_class]:
                key = f"raw/{split}/{folder.name}/{image.name}"
                s3.upload_file(str(image), BUCKET, key)  # type: ignore[attr-defined]
                count += 1
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="fruitlens")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

    port = free_port()
    forward = port_forward(args.namespace, port)
    try:
        # moto checks no signature; unsigned requests need no key at all.
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="eu-west-3",
            config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}),
        )
        print(f"seeded {seed(s3, args.dataset, args.classes, args.per_class)} images", flush=True)
        status = cli.main(
            [
                "submit",
                "--manifest",
                args.manifest,
                "--namespace",
                args.namespace,
                "--replace",
                "--timeout",
                str(args.timeout),
            ]
        )
        if status != 0:
            return status
        listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/kind/")
        keys = [o["Key"] for o in listing.get("Contents", [])]
        successes = [k for k in keys if k.endswith("/_SUCCESS")]
        if not successes:
            print(f"no _SUCCESS under s3://{BUCKET}/runs/kind/: {keys[:20]}", file=sys.stderr)
            return 1
        for key in successes:
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            # An S3A committer writes a JSON _SUCCESS; the classic one an empty file.
            committer = json.loads(body).get("committer")
            print(f"{key}: committer {committer}")
            if committer != "magic":
                return 1
        print(f"kind e2e passed: {len(keys)} objects under runs/kind/")
        return 0
    finally:
        forward.terminate()
        forward.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
