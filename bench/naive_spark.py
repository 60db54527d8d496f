"""Naive Spark featurization, as public notebooks write it: the baseline fruitlens must beat.

What makes it naive (each is common in published Fruits-360 / transfer-learning notebooks):
  - images upscaled to 224 x 224, VGG16's training size, although they are 100 x 100;
  - a scalar-batch pandas UDF that builds VGG16 and loads its weights inside the UDF, so once
    per Arrow batch (each task's partition), instead of once per Python worker;
  - keras `model.predict` on the batch, and Spark's and TensorFlow's default settings (every
    worker's TensorFlow uses every core).
Same weights file, same images. Prints one JSON object; the time is the Spark action's only
(the session start is excluded, as for the other measurements).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", required=True)
    parser.add_argument("--weights", required=True, help="a VGG16 notop weights file")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument(
        "--records-per-batch", type=int, default=0, help="Arrow batch; 0: Spark's default"
    )
    args = parser.parse_args()

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    builder = SparkSession.builder.master(args.master).appName("naive-featurize")
    if args.records_per_batch:
        builder = builder.config(
            "spark.sql.execution.arrow.maxRecordsPerBatch", str(args.records_per_batch)
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    weights_file, size = args.weights, args.image_size

    @F.pandas_udf("array<float>")  # type: ignore[call-overload]
    def featurize(contents: pd.Series) -> pd.Series:
        from keras.applications import VGG16
        from keras.applications.vgg16 import preprocess_input
        from PIL import Image

        model = VGG16(weights=None, include_top=False, pooling="avg", input_shape=(size, size, 3))
        model.load_weights(weights_file)
        pixels = np.stack(
            [
                np.asarray(Image.open(io.BytesIO(content)).convert("RGB").resize((size, size)))
                for content in contents
            ]
        ).astype(np.float32)
        predictions = model.predict(preprocess_input(pixels), verbose=0)
        return pd.Series([row.astype(np.float32) for row in predictions])

    files = (
        spark.read.format("binaryFile")
        .option("pathGlobFilter", "*.jpg")
        .option("recursiveFileLookup", "true")
        .load(args.input)
    )
    listed = files.count()
    start = time.perf_counter()
    done = files.select(featurize(F.col("content")).alias("f")).where(F.size("f") == 512).count()
    seconds = time.perf_counter() - start
    partitions = files.rdd.getNumPartitions()
    spark.stop()
    print(
        json.dumps(
            {
                "images": listed,
                "featurized": done,
                "seconds": seconds,
                "images_per_s": done / seconds,
                "image_size": size,
                "partitions": partitions,
                "records_per_batch": args.records_per_batch or "spark default (10000)",
            }
        )
    )


if __name__ == "__main__":
    main()
