"""The one typed configuration object, built once from defaults < file < environment < flags.

Every setting is declared once, in `Config`, with its help text and the subcommands that take it;
the CLI parser, the `FRUITLENS_<NAME>` environment variables and the `--config` file are all
derived from that declaration, so a setting cannot exist in one place and be missing in another.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlparse

from fruitlens import paths, redact
from fruitlens.errors import UsageError
from fruitlens.weights import FEATURE_DIM  # the width of every feature vector bounds --pca-k

ENV_PREFIX = "FRUITLENS_"

# Residency allow-list: AWS regions located in the European Union.
EU_REGIONS = frozenset(
    {
        "eu-west-1",
        "eu-west-3",
        "eu-central-1",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
    }
)

RUN = "run"
TRAIN = "train"
EVALUATE = "evaluate"
PREDICT = "predict"
SANITIZE = "sanitize"
ERASE = "erase"
RETENTION = "retention"
SUBMIT = "submit"
JARS = "jars"
REPORT = "report"

SPARK_COMMANDS = (RUN, TRAIN, EVALUATE, PREDICT, ERASE)
S3_COMMANDS = (RUN, TRAIN, EVALUATE, PREDICT, SANITIZE, ERASE, RETENTION, REPORT)
FEATURIZING_COMMANDS = (RUN, PREDICT)
WRITING_COMMANDS = (RUN, TRAIN, EVALUATE, PREDICT, SANITIZE, ERASE)

# S3 bucket naming rules (lowercase letters, digits, dots and hyphens; 3 to 63 characters).
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Commands that write report.html (run and evaluate with their outputs, report on its own).
REPORTING_COMMANDS = (RUN, EVALUATE, REPORT)
CONFIG_COMMANDS = (RUN, TRAIN, EVALUATE, PREDICT, SANITIZE, ERASE, RETENTION, JARS, REPORT)
# Presigned report URLs: a person opens them now; longer-lived links are shared secrets.
MAX_URL_EXPIRY_S = 3600


class ConfigError(UsageError, ValueError):
    """A setting is invalid; the message is meant for the person who typed it."""


def setting(default: Any, help: str, commands: Sequence[str], **extra: Any) -> Any:
    """Declare one setting: its default, its help text and the subcommands that accept it.

    `extra` declares what a value must satisfy, checked by `Config.validate` whichever channel
    (flag, environment, file) it came through: `choices`, `minimum`/`maximum` (inclusive),
    `above`/`below` (exclusive), `uri` (an s3a:// value must name a valid bucket), `repeat`.
    """
    metadata = {"help": help, "commands": tuple(commands), **extra}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Config:
    # --- data -------------------------------------------------------------------------------
    input: str | None = setting(
        None,
        "Images to read: a local folder or s3a://bucket/prefix in the Fruits-360 layout "
        "(<Class>/<file> or Training|Test/<Class>/<file>). Example: s3a://fruits/raw",
        (RUN, PREDICT, SANITIZE),
        uri=True,
    )
    output: str | None = setting(
        None,
        "Where results go: a local folder or s3a://bucket/prefix (for `report`: where the "
        "page goes; default the run's own folder). Example: s3a://fruits/runs/2026-11-25",
        (RUN, TRAIN, EVALUATE, PREDICT, SANITIZE, ERASE, REPORT),
        uri=True,
    )
    runs: list[str] = setting(
        [],
        "The run(s) to show: one output folder of `fruitlens run` (local or s3a), or two to "
        "compare side by side. Example: fruitlens report s3a://fruits/runs/r1 s3a://fruits/runs/r2",
        (REPORT,),
        positional=True,
    )
    features: str | None = setting(
        None,
        "Stored features of an earlier run (its output folder or its features/ Parquet). "
        "Example: s3a://fruits/runs/2026-11-25",
        (TRAIN, EVALUATE),
        uri=True,
    )
    model: str | None = setting(
        None,
        "A model saved by `fruitlens train` (the folder holding model/ and model.json). "
        "Example: s3a://fruits/models/v1",
        (EVALUATE, PREDICT),
        uri=True,
    )
    overwrite: bool = setting(
        False,
        "Replace an output prefix that already holds a run (refused otherwise). "
        "Example: --overwrite",
        (RUN, TRAIN, EVALUATE, PREDICT, SANITIZE),
    )
    incremental: bool = setting(
        False,
        "Reuse the features already stored under --output for images whose content id is "
        "unchanged; only new images are featurized. When nothing that shapes the results "
        "changed, the committed outputs are kept as they are. Example: --incremental",
        (RUN,),
    )
    max_pixels: int = setting(
        25_000_000,
        "Images with more pixels than this are rejected as decompression bombs before decoding. "
        "Example: --max-pixels 50000000",
        (*FEATURIZING_COMMANDS, SANITIZE),
        minimum=1,
    )
    max_file_bytes: int = setting(
        50_000_000,
        "Files larger than this are rejected as file_too_large from the listing's size, before "
        "their bytes are read (one huge file must not exhaust an executor's memory). "
        "Example: --max-file-bytes 100000000",
        FEATURIZING_COMMANDS,
        minimum=1,
    )
    # --- model ------------------------------------------------------------------------------
    weights: str = setting(
        "imagenet",
        "VGG16 weights: 'imagenet' (Keras download and cache, checksum checked), a weights file "
        "path or s3a:// URI, or 'seeded:N' (deterministic random init, NOT ImageNet features). "
        "Example: --weights seeded:0",
        FEATURIZING_COMMANDS,
    )
    image_size: int | None = setting(
        None,
        "Square side in pixels the images are resized to before VGG16; default: the images' "
        "native size (100 for Fruits-360). Example: --image-size 224",
        FEATURIZING_COMMANDS,
        minimum=32,  # VGG16 pools five times
    )
    # auto's rule and its evidence: featurize.choose_batch_size. At 64 a float32 worker holds
    # ~1.2 GB at 100 px (1.0 GB at 32), 3.1 GB at 224 px: the chart's executor memoryOverhead is
    # sized for two at 100 px.
    batch_size: int | Literal["auto"] = setting(
        "auto",
        "Images per VGG16 forward pass inside a Spark task: 'auto' (each worker chooses from its "
        "own CPU: 64 with AVX-512, 16 without, the faster on each in the benchmark), or a "
        "number; fewer need less memory per Python worker. Example: --batch-size 16",
        FEATURIZING_COMMANDS,
        minimum=1,
        maximum=4096,
    )
    precision: str = setting(
        "auto",
        "Arithmetic of the VGG16 forward pass, chosen by each worker from its own CPU: 'auto' "
        "(bf16 where the benchmark verified bf16 on the CPU's instructions and vendor: Intel's "
        "AMX-BF16, AMD's AVX512_BF16; else fp32), 'fp32', or 'bf16' (refused before Spark "
        "starts on a local run whose CPU has neither AMX-BF16 nor AVX512_BF16, whatever its "
        "vendor; an executor lacking them falls back to fp32 and says so in run.json). "
        "Features are float32 either way. Example: --precision fp32",
        FEATURIZING_COMMANDS,
        choices=("auto", "fp32", "bf16"),
    )
    # --- reduction and classification -------------------------------------------------------
    pca_k: int | None = setting(
        None,
        "PCA components to keep; default: the smallest k reaching --pca-variance. "
        "Example: --pca-k 50",
        (RUN, TRAIN),
        minimum=1,
        maximum=FEATURE_DIM,
    )
    pca_variance: float = setting(
        0.95,
        "Explained-variance target used to choose k when --pca-k is not given. "
        "Example: --pca-variance 0.9",
        (RUN, TRAIN),
        above=0.0,
        maximum=1.0,
    )
    pca_max_k: int = setting(
        256,
        "Upper bound on the automatically chosen k. Example: --pca-max-k 128",
        (RUN, TRAIN),
        minimum=1,
        maximum=FEATURE_DIM,
    )
    classifier: str = setting(
        "logreg",
        "Classifier family: 'logreg' (multinomial logistic regression) or 'mlp' "
        "(a one-hidden-layer perceptron). Example: --classifier mlp",
        (RUN, TRAIN),
        choices=("logreg", "mlp"),
    )
    cv_folds: int = setting(
        3,
        "Cross-validation folds (on Training only) that choose the regularisation. "
        "Example: --cv-folds 5",
        (RUN, TRAIN),
        minimum=2,
        maximum=100,
    )
    test_fraction: float | None = setting(
        None,
        "Without a Test/ split, hold out this stratified fraction of the images for scoring. "
        "Example: --test-fraction 0.2",
        (RUN, TRAIN),
        above=0.0,
        below=1.0,
    )
    class_weights: bool = setting(
        False,
        "Weight classes inversely to their frequency when training. Example: --class-weights",
        (RUN, TRAIN),
    )
    min_confidence: float = setting(
        0.0,
        "Predictions below this probability get the label 'unknown'. Example: --min-confidence 0.5",
        (PREDICT,),
        minimum=0.0,
        maximum=1.0,
    )
    seed: int = setting(
        0, "Seed for every random choice (splits, CV, init). Example: --seed 7", (RUN, TRAIN)
    )
    plots: bool = setting(
        True,
        "Draw the PNG plots (explained variance, PCA scatter, confusion matrix). "
        "Example: --no-plots",
        (RUN, EVALUATE),
    )
    # --- what a person sees -----------------------------------------------------------------
    verbose: int = setting(
        0,
        "Show the chatter of the parts: -v adds fruitlens's debug lines and Spark's and "
        "TensorFlow's warnings, -v -v everything (Spark INFO and its console progress bar, "
        "every library's debug lines). "
        "Example: -v -v",
        CONFIG_COMMANDS,
        count=True,
        short="-v",
    )
    progress_interval: float = setting(
        10.0,
        "Seconds between featurization progress lines when the output is not a terminal "
        "(CI, kubectl logs); a terminal redraws one line in place. Example: --progress-interval 30",
        FEATURIZING_COMMANDS,
    )
    report_thumbnails: bool = setting(
        False,
        "Put thumbnails of misclassified Test images in report.html (photos may be personal "
        "data: see docs/GDPR.md); off by default. Example: --report-thumbnails",
        REPORTING_COMMANDS,
    )
    report_url_expiry: int = setting(
        900,
        f"Seconds a presigned report URL stays valid (S3 runs; at most {MAX_URL_EXPIRY_S}). "
        "Example: --report-url-expiry 300",
        (REPORT,),
    )
    # --- Spark ------------------------------------------------------------------------------
    master: str | None = setting(
        None,
        "Spark master; default local[*], or whatever spark-submit was given. "
        "Example: --master local[2]",
        SPARK_COMMANDS,
    )
    spark_conf: list[str] = setting(
        [],
        "Extra Spark setting KEY=VALUE, repeatable; spark.driver.extraJavaOptions adds to "
        "fruitlens's own JVM options (spark.driver.defaultJavaOptions) and wins where they "
        "differ (-XX:TieredStopAtLevel=4 keeps C2 in a small local run's driver; a collector "
        "named there, -XX:+UseG1GC, replaces the serial one). "
        "Example: --spark-conf spark.driver.memory=4g",
        SPARK_COMMANDS,
        repeat=True,
    )
    jars_dir: str | None = setting(
        None,
        "Folder caching hadoop-aws and its AWS SDK (fetched from Maven Central on first use) "
        "and fruitlens's JVM reader (compiled there once); default ~/.cache/fruitlens/jars. "
        "Example: --jars-dir /opt/jars",
        (*SPARK_COMMANDS, JARS),
    )
    # --- S3 and GDPR controls ---------------------------------------------------------------
    region: str = setting(
        "eu-west-3",
        "AWS region of the buckets; must be in the EU unless --allow-non-eu-region is given. "
        "Example: --region eu-central-1",
        S3_COMMANDS,
    )
    allow_non_eu_region: str | None = setting(
        None,
        "Reason for using a region outside the EU (recorded in run.json). "
        "Example: --allow-non-eu-region 'DPA ticket 42'",
        S3_COMMANDS,
    )
    s3_endpoint: str | None = setting(
        None,
        "S3-compatible endpoint URL; https required except on loopback. "
        "Example: --s3-endpoint http://127.0.0.1:9000",
        S3_COMMANDS,
    )
    allow_plain_http: str | None = setting(
        None,
        "Reason for plain http to a non-loopback --s3-endpoint (an in-cluster test server); "
        "recorded in run.json. Example: --allow-plain-http 'kind cluster, in-cluster traffic'",
        S3_COMMANDS,
    )
    s3_anonymous: bool = setting(
        False,
        "Send unsigned S3 requests (test servers that check no signature, such as the kind "
        "overlay's moto); only with --s3-endpoint, never to AWS. Example: --s3-anonymous",
        S3_COMMANDS,
    )
    s3_credentials_provider: str | None = setting(
        None,
        "s3a credentials provider class(es), comma-separated; default: Hadoop's own chain. "
        "On EKS with IRSA the Helm chart sets the web-identity one (the default chain was seen "
        "reaching the node's role first). Example: --s3-credentials-provider "
        "software.amazon.awssdk.auth.credentials.WebIdentityTokenFileCredentialsProvider",
        SPARK_COMMANDS,
    )
    sse: str | None = setting(
        None,
        "Server-side encryption of every written object: 'kms', 's3' or 'none'; default kms "
        "when --sse-kms-key is given, else s3. Example: --sse kms",
        S3_COMMANDS,
        choices=("kms", "s3", "none"),
    )
    sse_kms_key: str | None = setting(
        None,
        "KMS key ARN for --sse kms. "
        "Example: --sse-kms-key arn:aws:kms:eu-west-3:111122223333:key/abcd",
        S3_COMMANDS,
    )
    umask: str = setting(
        "077",
        "Permission bits removed from every local file and folder written (octal): 077 makes "
        "outputs readable by their owner only (0600 files, 0700 folders). Example: --umask 027",
        WRITING_COMMANDS,
        pattern=r"0?[0-7]{3}",
    )
    pseudonymize: bool = setting(
        False,
        "Replace every path in the outputs by the image's content id (labels stay). "
        "Example: --pseudonymize",
        S3_COMMANDS,
    )
    # --- erasure and retention --------------------------------------------------------------
    image_id: list[str] = setting(
        [],
        "Content id (SHA-256 of the image bytes, as in the outputs' image_id) of an image whose "
        "derived rows must be erased; repeatable. Example: --image-id 9f86d08...",
        (ERASE,),
        repeat=True,
    )
    path: list[str] = setting(
        [],
        "Source path or URI of an image whose derived rows must be erased; repeatable. "
        "Example: --path 's3a://fruits/raw/Training/Apple Braeburn/r_12_100.jpg'",
        (ERASE,),
        repeat=True,
    )
    delete_source: bool = setting(
        False,
        "Also delete the erased images' source objects. Example: --delete-source",
        (ERASE,),
    )
    bucket: str | None = setting(
        None,
        "Bucket whose lifecycle rules are set. Example: --bucket fruits",
        (RETENTION,),
        bucket=True,
    )
    days: int | None = setting(
        None,
        "Objects under the prefixes expire this many days after creation. Example: --days 30",
        (RETENTION,),
        minimum=1,
    )
    prefix: list[str] = setting(
        ["runs/"],
        "Key prefix the retention rule covers; repeatable; default runs/. "
        "Example: --prefix runs/ --prefix raw/",
        (RETENTION,),
        repeat=True,
    )

    # --- derived views ----------------------------------------------------------------------
    @property
    def umask_bits(self) -> int:
        return int(self.umask, 8)

    @property
    def effective_sse(self) -> str:
        if self.sse is not None:
            return self.sse
        return "kms" if self.sse_kms_key else "s3"

    def public_dict(self) -> dict[str, Any]:
        """The effective configuration for run.json, every secret-looking value redacted (a
        --spark-conf can carry fs.s3a.secret.key=...)."""
        return redact.scrub(dataclasses.asdict(self))

    def validate(self) -> Config:
        """Check the settings that can be checked without touching any data."""
        for item in dataclasses.fields(self):
            check_value(item, getattr(self, item.name))
        if self.region not in EU_REGIONS and not self.allow_non_eu_region:
            raise ConfigError(
                f"region {self.region!r} is outside the EU; personal data must stay in "
                f"{', '.join(sorted(EU_REGIONS))}, or pass --allow-non-eu-region REASON"
            )
        if self.s3_endpoint and not self.allow_plain_http:
            check_endpoint_in_transit(self.s3_endpoint)
        if self.s3_anonymous and not self.s3_endpoint:
            raise ConfigError(
                "--s3-anonymous needs --s3-endpoint: AWS never gets unsigned requests"
            )
        if self.s3_anonymous and self.s3_credentials_provider:
            raise ConfigError(
                "--s3-anonymous and --s3-credentials-provider exclude each other: pick one"
            )
        if self.effective_sse == "kms" and not self.sse_kms_key:
            raise ConfigError("--sse kms needs --sse-kms-key ARN")
        if self.pca_k is not None and self.pca_max_k < self.pca_k:
            # pca_max_k bounds the automatic choice only; an explicit k above it is a typo.
            raise ConfigError(f"--pca-k {self.pca_k} is above --pca-max-k {self.pca_max_k}")
        if not 0 < self.pca_variance <= 1:
            raise ConfigError("--pca-variance must be in (0, 1]")
        if self.test_fraction is not None and not 0 < self.test_fraction < 1:
            raise ConfigError("--test-fraction must be in (0, 1)")
        if self.image_size is not None and self.image_size < 32:
            raise ConfigError("--image-size must be at least 32 (VGG16 pools five times)")
        if not 0 < self.report_url_expiry <= MAX_URL_EXPIRY_S:
            raise ConfigError(f"--report-url-expiry must be in 1..{MAX_URL_EXPIRY_S} seconds")
        if self.progress_interval <= 0:
            raise ConfigError("--progress-interval must be more than 0 seconds")
        for item in self.spark_conf:
            if "=" not in item or not item.partition("=")[0].strip():
                raise ConfigError(f"--spark-conf {item!r} is not KEY=VALUE")
        if (
            self.input
            and self.output
            and (paths.inside(self.output, self.input) or paths.inside(self.input, self.output))
        ):
            # A rerun would read its own outputs as images (plots/ would become a class).
            raise ConfigError(
                f"--output {self.output} must not be inside --input {self.input} (nor the other "
                "way round): choose a folder or prefix beside it"
            )
        return self


def check_value(item: dataclasses.Field[Any], value: Any) -> None:
    """The constraints a setting declares (see `setting`), whatever channel the value came by."""
    if value is None:
        return
    flag, meta = flag_name(item.name), item.metadata
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{flag} {value!r} is not one of {', '.join(meta['choices'])}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        bounds = [
            ("minimum", "at least", lambda v, b: v >= b),
            ("maximum", "at most", lambda v, b: v <= b),
            ("above", "above", lambda v, b: v > b),
            ("below", "below", lambda v, b: v < b),
        ]
        for key, words, holds in bounds:
            if key in meta and not holds(value, meta[key]):
                raise ConfigError(f"{flag} must be {words} {meta[key]} (got {value})")
    if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
        raise ConfigError(f"{flag} {value!r} must match {meta['pattern']}")
    if meta.get("bucket"):
        check_bucket(flag, value)
    if meta.get("uri") and paths.is_s3(value):
        check_bucket(flag, urlparse(value).netloc)


def check_bucket(flag: str, bucket: str) -> None:
    if not BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(
            f"{flag}: {bucket!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, "
            "dots and hyphens)"
        )


def check_endpoint_in_transit(endpoint: str) -> None:
    """Encryption in transit: plain http is only acceptable to this machine itself."""
    parsed = urlparse(endpoint)
    if parsed.scheme == "https":
        return
    if parsed.scheme != "http":
        raise ConfigError(
            f"S3 endpoint {endpoint!r} must start with https:// (or http:// on loopback)"
        )
    host = parsed.hostname or ""
    if host == "localhost" or _is_loopback_ip(host):
        return
    raise ConfigError(
        f"S3 endpoint {endpoint!r} uses plain http to a remote host; use https "
        "(plain http is only allowed to 127.0.0.1 or localhost)"
    )


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def setting_types() -> Mapping[str, Any]:
    """Each setting's type by name: one mapping shared by every caller, so read, never
    changed. Config's annotations are strings (`from __future__ import annotations`), which
    get_type_hints compiles anew at every call: the property tests build thousands of
    configurations, and py-spy put 3 CPU-s of the core test tier here."""
    return get_type_hints(Config)


def fields_for(command: str) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(Config) if command in f.metadata["commands"]]


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Add one flag per setting this command takes; defaults are resolved later, not here."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="JSON or YAML file of settings (keys as the flags, with underscores). "
        "Example: --config job.yaml",
    )
    hints = setting_types()
    for f in fields_for(command):
        kind = hints[f.name]
        help_text = f"{f.metadata['help']} [env {env_name(f.name)}]"
        if f.metadata.get("positional"):
            metavar = f.name.upper().rstrip("S")
            parser.add_argument(f.name, nargs="*", metavar=metavar, help=help_text)
            continue
        if f.metadata.get("count"):
            names = [f.metadata["short"], flag_name(f.name)]
            parser.add_argument(*names, action="count", default=None, help=help_text)
            continue
        if kind is bool:
            parser.add_argument(
                flag_name(f.name),
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
            continue
        # Values stay text here: `build_config` converts and checks them exactly as it does the
        # environment's and the file's, so the three channels cannot disagree.
        kwargs: dict[str, Any] = {"default": None, "help": help_text, "dest": f.name}
        if "choices" in f.metadata:
            kwargs["metavar"] = "{" + ",".join(f.metadata["choices"]) + "}"
        if f.metadata.get("repeat"):
            kwargs["action"] = "append"
        parser.add_argument(flag_name(f.name), **kwargs)


def words_of(kind: Any) -> tuple[str, ...]:
    """The words a number setting takes in place of a number (`int | Literal["auto"]`)."""
    return tuple(
        word for arg in get_args(kind) if get_origin(arg) is Literal for word in get_args(arg)
    )


def _scalar_type(kind: Any) -> type:
    for candidate in (int, float, str):
        if kind is candidate or kind == (candidate | None):
            return candidate
        if words_of(kind) and candidate in get_args(kind):  # int | Literal["auto"]
            return candidate
    raise TypeError(f"no parser for setting type {kind!r}")


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    """One value from any channel (flag text, environment text, file scalar) to its type."""
    if raw is None:
        return None
    flag = flag_name(name)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{flag}: {raw!r} is not a boolean (true or false)")
    if kind == list[str]:
        if isinstance(raw, str):
            return [part for part in raw.split(",") if part]
        if not isinstance(raw, list) or any(isinstance(p, (dict, list)) for p in raw):
            raise ConfigError(f"{flag}: {raw!r} is not a list of values")
        return [str(part) for part in raw]
    target = _scalar_type(kind)
    words = words_of(kind)
    expected = " or ".join([target.__name__, *map(repr, words)])
    if isinstance(raw, (bool, dict, list)):  # a YAML `yes` or a nested block is never a number
        raise ConfigError(f"{flag}: {raw!r} is not a valid {expected}")
    if isinstance(raw, str) and raw.strip() in words:
        return raw.strip()
    if target is str:
        return str(raw)
    try:
        value = target(str(raw).strip())
    except ValueError as exc:
        raise ConfigError(f"{flag}: {raw!r} is not a valid {expected}") from exc
    if target is float and not math.isfinite(value):
        raise ConfigError(f"{flag}: {raw!r} is not a finite number")
    return value


def read_config_file(path: str) -> dict[str, Any]:
    """The --config file's settings; any problem is named with the file (and line)."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        # On Kubernetes: the ConfigMap was not mounted (the operator's webhook must select the
        # namespace, docs/DEPLOY.md).
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"--config {path}: cannot be read ({reason})") from exc
    try:
        if path.endswith((".yaml", ".yml")):
            loaded = yaml.safe_load(text) or {}
        else:
            loaded = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--config {path}: line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})"
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise ConfigError(f"--config {path}: {where}invalid YAML ({problem})") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"--config {path}: expected a mapping of settings")
    return {str(key).replace("-", "_"): value for key, value in loaded.items()}


def build_config(
    command: str,
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Merge defaults < --config file < FRUITLENS_* environment < flags, then validate."""
    environ = os.environ if environ is None else environ
    hints = setting_types()
    known = {f.name for f in dataclasses.fields(Config)}
    from_file = read_config_file(flags["config"]) if flags.get("config") else {}
    unknown = set(from_file) - known
    if unknown:
        raise ConfigError(f"unknown settings in {flags['config']}: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for f in fields_for(command):
        kind = hints[f.name]
        # An absent positional parses as []: it leaves the setting to the next source.
        flag = flags.get(f.name) if flags.get(f.name) != [] else None
        for source in (flag, environ.get(env_name(f.name)), from_file.get(f.name)):
            if source is not None:
                values[f.name] = _coerce(f.name, kind, source)
                break
        if f.metadata.get("uri") and isinstance(values.get(f.name), str):
            values[f.name] = absolute_if_local(values[f.name])
    return Config(**values).validate()


def absolute_if_local(uri: str) -> str:
    """A relative local path made absolute against this process's working directory.

    Spark resolves a relative path against the JVM's working directory and Python against its
    own: they differ when the session was started elsewhere (a notebook, a caller that changed
    directory). Resolved once here, both read and write the same folder. URIs stay as given.
    """
    if "://" in uri or uri.startswith("file:"):
        return uri
    return os.path.abspath(uri)
