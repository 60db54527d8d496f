"""The one check of the real network inside Spark: seeded VGG16 weights, shipped to the worker
with addFile and checksummed there, give the same 512 features as the same model run here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession

from fruitlens import weights
from fruitlens.config import Config
from fruitlens.pipeline import decode, featurize
from support.images import rgb_jpeg


def test_seeded_vgg16_in_spark_matches_the_model_run_in_the_driver(
    spark: SparkSession, tmp_path: Path
):
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    for i, colour in enumerate(colours):
        folder = tmp_path / "in" / f"class{i}"
        folder.mkdir(parents=True)
        (folder / "a.jpg").write_bytes(rgb_jpeg(colour, size=64))
    resolved = weights.resolve("seeded:0", None)
    config = Config(input=str(tmp_path / "in"), weights="seeded:0")

    result = featurize.featurize_and_count(spark, config, resolved)

    assert result.counts == {"listed": 3, "processed": 3, "rejected": 0, "rejected_by_reason": {}}
    assert result.spec.image_size == 64  # the images' own size
    rows = sorted(result.processed.collect(), key=lambda row: row["label"])
    in_spark = np.stack([row["features"].toArray() for row in rows])
    model = weights.build_vgg16(64)
    weights.load_into(model, resolved.local_path)
    forward = featurize.compile_forward(model, 64)
    pixels = np.stack(
        [decode.decode(rgb_jpeg(colour, size=64), 64, 10**6).pixels for colour in colours]
    ).astype(np.float32)
    here = forward(pixels)
    assert in_spark.shape == (3, weights.FEATURE_DIM)
    np.testing.assert_allclose(in_spark, here, rtol=1e-4, atol=1e-5)
    assert not np.allclose(in_spark[0], in_spark[1])  # the network does see the pixels
