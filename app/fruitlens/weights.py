"""VGG16 weights: ImageNet in Keras's cache, a file (local or s3a), or a seeded init.

Whatever the source, the driver ends up with one local weights file and its SHA-256; that file
is shipped to the workers with SparkContext.addFile, so every executor featurizes with exactly
the bytes recorded in run.json. `seeded:N` goes through the same path: it writes its weights to
a file first, which is also how the tests feed "a file of weights" to the real loading code.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fruitlens import checksum, console, paths
from fruitlens.errors import UsageError

log = logging.getLogger(__name__)

IMAGENET_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + IMAGENET_FILE
# The MD5 Keras itself pins for this file (keras/src/applications/vgg16.py).
IMAGENET_MD5 = "6d6bbae143d832006294945121d1f1fc"
FEATURE_DIM = 512
SEEDED = re.compile(r"seeded:(\d+)")


class WeightsError(UsageError):
    pass


@dataclass(frozen=True)
class ResolvedWeights:
    spec: str  # what the user asked for: imagenet, a path/URI, seeded:N
    local_path: Path
    sha256: str

    @property
    def is_seeded(self) -> bool:
        return SEEDED.fullmatch(self.spec) is not None

    def describe(self) -> dict[str, Any]:
        return {
            "weights": self.spec,
            "weights_sha256": self.sha256,
            "imagenet_features": not self.is_seeded,
        }


def build_vgg16(image_size: int, bf16: bool = False) -> Any:
    """The featurizer network: VGG16's convolutional part with global average pooling (512).

    With `bf16`, its layers compute in bfloat16 (Keras's mixed_bfloat16 policy: weights stay
    float32 and load from the same file; oneDNN runs the convolutions on AMX or AVX512_BF16).
    keras.applications takes no dtype, so the global policy is set for this build only.
    """
    console.quiet_tensorflow()
    import keras
    from keras.applications import VGG16

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if bf16 else "float32")
    try:
        return VGG16(
            weights=None,
            include_top=False,
            pooling="avg",
            input_shape=(image_size, image_size, 3),
        )
    finally:
        keras.config.set_dtype_policy(previous)


def seeded_weights_file(seed: int) -> Path:
    """A deterministic random init, written once to the cache as a Keras weights file.

    The values come from numpy's PCG64 with Keras's default initialisers' distributions
    (Glorot-uniform kernels, zero biases), so they are identical on every machine and version.
    """
    import numpy as np

    target = paths.cache_dir() / "weights" / f"vgg16-notop-seeded-{seed}.weights.h5"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    model = build_vgg16(32)  # conv weights do not depend on the input size
    rng = np.random.Generator(np.random.PCG64(seed))
    values = []
    for variable in model.weights:
        shape = tuple(variable.shape)
        if len(shape) == 4:
            fan_in = shape[0] * shape[1] * shape[2]
            fan_out = shape[0] * shape[1] * shape[3]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            values.append(rng.uniform(-limit, limit, size=shape).astype("float32"))
        else:
            values.append(np.zeros(shape, dtype="float32"))
    model.set_weights(values)
    # Named after this process: several may build it at once into a cold cache (the test lanes,
    # two runs), and with one shared name each would write into or rename the other's file.
    # Keras saves only to a name that ends in ".weights.h5".
    partial = target.with_name(
        f"{target.name.removesuffix('.weights.h5')}.{os.getpid()}.partial.weights.h5"
    )
    model.save_weights(partial)
    partial.replace(target)
    return target


def keras_models_dir() -> Path:
    """Where Keras keeps the files its applications download: $KERAS_HOME/models, by default
    ~/.keras/models (the image links its baked file there)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def imagenet_weights_file() -> Path:
    """The ImageNet file in Keras's cache, downloaded there once and MD5-checked by pooch, as the
    jars and the sample are: finding it, or finding the network out of reach, needs no
    TensorFlow import (5-8 s)."""
    import pooch

    pooch.get_logger().setLevel("WARNING")  # its INFO line would precede a one-line error
    try:
        return Path(
            pooch.retrieve(
                IMAGENET_URL,
                known_hash=f"md5:{IMAGENET_MD5}",
                fname=IMAGENET_FILE,
                path=keras_models_dir(),
                progressbar=False,
            )
        )
    except Exception as exc:  # requests' network errors, pooch's hash error, an unwritable cache
        raise WeightsError(
            "cannot get the VGG16 ImageNet weights (no network or blocked download: "
            f"{type(exc).__name__}). Download {IMAGENET_URL} elsewhere and pass it with "
            "--weights /path/to/" + IMAGENET_FILE + " (or an s3a:// URI), or put it in "
            "$KERAS_HOME/models/; --weights seeded:0 runs without ImageNet features."
        ) from exc


def remote_copy(uri: str) -> Path:
    """Where the driver copies the weights at `uri` (s3a): a folder of its own per URI, so the
    next run with the same URI replaces the copy and one with another URI keeps it apart."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return paths.cache_dir() / "weights" / "remote" / checksum.sha256(uri.encode())[:16] / name


def resolve(spec: str, fetch: Any) -> ResolvedWeights:
    """Turn --weights into a local file and its checksum, before Spark does any work.

    `fetch(uri, destination)` copies a remote file (s3a) to a local path; injected so this module
    stays independent of how S3 is reached.
    """
    seeded = SEEDED.fullmatch(spec)
    if seeded:
        local = seeded_weights_file(int(seeded.group(1)))
        log.warning(
            "weights %s: deterministic RANDOM init, NOT ImageNet features; accuracy figures "
            "from this run say nothing about the ImageNet model",
            spec,
        )
    elif spec == "imagenet":
        local = imagenet_weights_file()
    elif paths.is_s3(spec):
        local = fetch(spec, remote_copy(spec))
    else:
        local = Path(spec).expanduser()
        if not local.is_file():
            raise WeightsError(f"weights file {spec!r} does not exist")
    return ResolvedWeights(spec=spec, local_path=local, sha256=checksum.sha256(local))


def load_into(model: Any, weights_file: Path) -> None:
    """Load a weights file (Keras's .weights.h5 or the legacy ImageNet .h5) into the network."""
    try:
        model.load_weights(weights_file)
    except Exception as exc:  # Keras raises ValueError, OSError or h5py errors alike
        raise WeightsError(f"{weights_file} is not a VGG16 notop weights file: {exc}") from exc
