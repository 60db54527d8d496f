"""Where featurization time goes inside Spark: reading, decode + Arrow, and the model.

Runs three Spark jobs over the same images, in one session with warm Python workers:
  read:    binaryFile listing + bytes + SHA-256 ids (JVM only, no Python)
  decode:  the featurizer UDF with the network replaced by zeros (read + Arrow both ways +
           decode + building the output rows)
  model:   the real featurizer, twice: cold (workers build VGG16) and warm
The model's own share is warm - decode. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--weights", default="seeded:0")
    parser.add_argument("--master", default="local[2]")
    # Text, parsed and checked by the job's configuration below; no size: the images' own.
    parser.add_argument("--image-size")
    # The job's own default: each worker's choice from its CPU (featurize.choose_batch_size).
    parser.add_argument("--batch-size", default="auto", help="auto or a number")
    parser.add_argument("--precision", default="fp32", help="auto, fp32 or bf16")
    args = parser.parse_args()

    from pyspark.sql import functions as F

    from fruitlens import session, weights
    from fruitlens.commands.preflight import list_input
    from fruitlens.config import build_config
    from fruitlens.outputs.storage import Storage
    from fruitlens.pipeline import featurize, images

    # The job's own parsing and checks of these settings (environment and files left out).
    config = build_config("run", vars(args), environ={})
    resolved = weights.resolve(config.weights, None)
    spark = session.start_session(config, "fruitlens-profile")
    storage = Storage(config)
    listing = list_input(config, storage).listed
    files = images.read_listed_files(spark, listing.readable)
    named = images.with_names(files, images.qualified_root(spark, str(config.input)))
    image_size = config.image_size or featurize.native_size(storage, listing)
    spec = featurize.shipped_spec(spark, config, resolved, image_size)
    partitions = named.rdd.getNumPartitions()
    listed = named.count()

    @F.pandas_udf(featurize.FEATURIZED)  # type: ignore[call-overload]
    def no_model(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        def zeros(batch: np.ndarray) -> np.ndarray:
            return np.zeros((len(batch), 512), dtype=np.float32)

        no_network = featurize.WorkerModel(
            zeros,
            featurize.FP32,
            "profile: network replaced by zeros",
            "profile",
            featurize.this_cpu(),
            spec.threads,
        )
        for contents, refusals in batches:
            yield featurize.featurize_batch(contents, refusals, spec, lambda: no_network)

    def read() -> None:
        named.agg(F.max("image_id"), F.sum(F.length("content"))).collect()

    def decode_only() -> None:
        out = named.select(no_model(F.col("content"), F.col("refusal")).alias("out"))
        out.where(F.col("out.reason").isNull()).count()

    def model() -> None:
        out = featurize.featurize_images(named, spec)
        out.where(F.col("reason").isNull()).count()

    # Warm up: the JVM's file path, and the Python workers' start and imports (not the model).
    read()
    decode_only()
    result = {
        "images": listed,
        "partitions": partitions,
        "read_s": timed(read),
        "decode_arrow_s": timed(decode_only),
        "model_cold_s": timed(model),
        "model_warm_s": timed(model),
    }
    result["model_only_s"] = result["model_warm_s"] - result["decode_arrow_s"]
    result["warm_images_per_s"] = listed / result["model_warm_s"]
    spark.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
