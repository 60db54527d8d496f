"""run.json and the one-screen summary: what ran, on what, by whom, with which result."""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import logging
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import fruitlens
from fruitlens import checksum, paths, weights
from fruitlens.config import Config
from fruitlens.outputs.names import REPORT_HTML

if TYPE_CHECKING:
    from fruitlens.pipeline.featurize import Featurized

log = logging.getLogger(__name__)

# Settings that change a run's outputs for the same images: `--incremental` keeps the committed
# outputs as they are only when these, the inputs and the featurizer are all unchanged.
RESULT_SETTINGS = (
    "input",
    "image_size",
    "max_pixels",
    "max_file_bytes",
    "pca_k",
    "pca_variance",
    "pca_max_k",
    "classifier",
    "cv_folds",
    "test_fraction",
    "class_weights",
    "seed",
    "plots",
    "pseudonymize",
    "sse",
    "sse_kms_key",
)


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def versions() -> dict[str, str | None]:
    import pyspark

    return {
        "fruitlens": fruitlens.__version__,
        "spark": pyspark.__version__,
        "tensorflow": _version("tensorflow-cpu", "tensorflow"),
        "keras": _version("keras"),
        "python": platform.python_version(),
    }


def caller_identity(config: Config) -> dict[str, Any]:
    """Who ran the job: the AWS principal when the credential chain names one, and the OS user."""
    identity: dict[str, Any] = {"os_user": getpass.getuser()}
    if config.s3_endpoint:
        return identity  # a local S3 server has no identity service worth asking
    try:
        import boto3

        sts = boto3.client("sts", region_name=config.region)
        answer = sts.get_caller_identity()
        identity["aws_arn"] = answer.get("Arn")
        identity["aws_account"] = answer.get("Account")
    except Exception as exc:  # no credentials, no network: the OS user is still recorded
        identity["aws_arn"] = None
        identity["aws_identity_error"] = type(exc).__name__
    return identity


@dataclass
class RunReport:
    command: str
    config: Config
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    timings_s: dict[str, float] = field(default_factory=dict)
    sections: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str, images: int | None = None) -> Iterator[None]:
        """Time a stage and log one progress line when it ends."""
        log.info("stage %s: started", name)
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.timings_s[name] = round(elapsed, 3)
        rate = f", {images / elapsed:.1f} images/s" if images and elapsed > 0 else ""
        log.info("stage %s: done in %.1f s%s", name, elapsed, rate)

    def record_featurization(self, result: Featurized) -> None:
        """The `images`, `model` and throughput sections (after the `featurize` stage)."""
        counts = result.counts
        if result.reused is not None:
            self.sections["incremental"] = {
                "reused_features": result.reused,
                "featurized_now": counts["processed"] - result.reused,
            }
        elapsed = self.timings_s["featurize"]
        self.sections["images"] = counts
        self.sections["precision"] = result.precision
        self.sections["throughput_images_per_s"] = (
            round(counts["listed"] / elapsed, 3) if elapsed else None
        )
        self.sections["model"] = {
            "name": "VGG16",
            "include_top": False,
            "pooling": "avg",
            "image_size": result.spec.image_size,
            "feature_dim": weights.FEATURE_DIM,
            **result.resolved.describe(),
        }
        log.info(
            "featurized %d of %d images (%d rejected) at %s images/s",
            counts["processed"],
            counts["listed"],
            counts["rejected"],
            self.sections["throughput_images_per_s"],
        )

    def to_dict(self) -> dict[str, Any]:
        cfg = self.config
        residency = {
            "region": cfg.region,
            "eu_region": cfg.allow_non_eu_region is None,
            "non_eu_reason": cfg.allow_non_eu_region,
            "custom_endpoint": cfg.s3_endpoint,
            "plain_http_reason": cfg.allow_plain_http,
            # Server-side encryption is what S3 does to objects: a local output has none (its
            # files are protected by --umask), and saying "s3" would read as if it had.
            "sse": cfg.effective_sse if paths.is_s3(cfg.output or "") else None,
            "local_umask": None if paths.is_s3(cfg.output or "") else cfg.umask,
            "pseudonymized": cfg.pseudonymize,
        }
        return {
            "command": self.command,
            "started_at": self.started_at,
            "finished_at": datetime.now(timezone.utc).isoformat(),
            "input": cfg.input,
            "output": cfg.output,
            "audit": {**caller_identity(cfg), **residency},
            "versions": versions(),
            "timings_s": self.timings_s,
            "config": cfg.public_dict(),
            **self.sections,
        }


def run_fingerprint(config: Config, digest: str, resolved: weights.ResolvedWeights) -> str:
    """What decides a run's outputs: inputs, weights, result settings, fruitlens version."""
    settings = config.public_dict()
    decisive = {
        "inputs_sha256": digest,
        "weights_sha256": resolved.sha256,
        "settings": {name: settings[name] for name in RESULT_SETTINGS},
        "fruitlens": fruitlens.__version__,
    }
    text = json.dumps(decisive, sort_keys=True, default=str)
    return checksum.sha256(text.encode("utf-8"))


def summary(document: dict[str, Any]) -> str:
    """The one screen a person reads at the end of a run."""
    images = document.get("images", {})
    lines = [
        "",
        f"fruitlens {document['command']} finished",
        f"  images     listed {images.get('listed', 0)}, processed {images.get('processed', 0)}, "
        f"rejected {images.get('rejected', 0)}",
    ]
    for reason, count in sorted(images.get("rejected_by_reason", {}).items()):
        lines.append(f"             rejected as {reason}: {count}")
    hidden = document.get("listing", {}).get("hidden_files_skipped")
    if hidden:
        lines.append(f"             not listed (hidden name, '.' or '_'): {hidden}")
    model = document.get("model", {})
    if model:
        kind = "ImageNet" if model.get("imagenet_features") else "NOT ImageNet (seeded init)"
        lines.append(
            f"  model      {model.get('name')} {model.get('image_size')}px, weights "
            f"{model.get('weights')} ({kind})"
        )
    precision = document.get("precision", {})
    if precision:
        used = ", ".join(f"{name} {count}" for name, count in precision["images"].items())
        lines.append(f"  precision  {precision['asked']} asked: {used or 'nothing featurized'}")
    pca = document.get("pca", {})
    if pca:
        requested = pca.get("k_requested")
        lowered = (
            f" (lowered from --pca-k {requested}: too few images processed)"
            if requested and requested != pca.get("k")
            else ""
        )
        lines.append(
            f"  pca        k={pca.get('k')}{lowered}, "
            f"explained variance {pca.get('explained_variance'):.3f}"
        )
    classifier = document.get("classifier", {})
    if classifier.get("accuracy") is not None:
        lines.append(
            f"  classifier {classifier.get('name')}: accuracy {classifier['accuracy']:.3f}, "
            f"macro-F1 {classifier.get('macro_f1', 0):.3f} "
            f"on {classifier.get('test_images')} images"
        )
    if document.get("throughput_images_per_s"):
        lines.append(
            f"  throughput {document['throughput_images_per_s']:.1f} images/s (featurization)"
        )
    total = sum(document.get("timings_s", {}).values())
    lines.append(f"  time       {total:.1f} s in stages")
    lines.append(f"  outputs    {document.get('output')}")
    page = (document.get("outputs") or {}).get(REPORT_HTML)
    if page:  # run.json names it relative to the run; a person wants where it is
        output = document.get("output")
        lines.append(f"  report     {paths.join(str(output), page) if output else page}")
    return "\n".join(lines)
