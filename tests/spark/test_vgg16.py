"""The real network: seeded VGG16 weights, written to a file, read through the file-loading path,
shipped to the worker with addFile and checksummed there, give the same 512 features in Spark as
`seeded:0`'s model run here; and its bf16 arithmetic gives the float32 features for every
practical purpose (per-image cosine). The rest of tests/spark uses a stand-in network."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import SparkSession

from fruitlens import weights
from fruitlens.commands.preflight import list_input
from fruitlens.config import Config
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import decode, featurize
from fruitlens.pipeline.featurize import BF16, FP32, this_cpu
from support.images import rgb_jpeg

pytestmark = pytest.mark.vgg16


def test_seeded_vgg16_from_a_file_in_spark_matches_the_model_run_in_the_driver(
    spark: SparkSession, seeded_weights_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    for i, colour in enumerate(colours):
        folder = tmp_path / "in" / f"class{i}"
        folder.mkdir(parents=True)
        (folder / "a.jpg").write_bytes(rgb_jpeg(colour, size=64))
    resolved = weights.resolve(str(seeded_weights_file), None)
    assert resolved.sha256 == weights.resolve("seeded:0", None).sha256  # the same weights
    # float32 on both sides: `auto` is bf16 on a CPU where the benchmark verified it, and bf16
    # against float32 is the next test's comparison.
    config = Config(input=str(tmp_path / "in"), weights=str(seeded_weights_file), precision="fp32")

    storage = Storage(config)
    listing = list_input(config, storage)
    size = featurize.native_size(storage, listing.listed)
    spec = featurize.shipped_spec(spark, config, resolved, size)
    result = featurize.featurize_and_count(spark, config, resolved, listing.listed, spec)

    assert result.counts == {"listed": 3, "processed": 3, "rejected": 0, "rejected_by_reason": {}}
    assert result.spec.image_size == 64  # the images' own size
    rows = sorted(result.processed.collect(), key=lambda row: row["label"])
    in_spark = np.stack([row["features"].toArray() for row in rows])
    model = weights.build_vgg16(64)
    weights.load_into(model, resolved.local_path)
    pixels = np.stack(
        [decode.decode(rgb_jpeg(colour, size=64), 64, 10**6).pixels for colour in colours]
    ).astype(np.float32)
    # Traced without AutoGraph: no converted source left in /tmp by workers that os._exit.
    # AutoGraph writes where tempfile points: a folder of this test's own, not the /tmp that
    # the other lanes' processes share.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    here = featurize.compile_forward(model, 64)(pixels)
    assert not list(private_tmp.glob("__autograph_generated_file*"))
    assert in_spark.shape == (3, weights.FEATURE_DIM)
    np.testing.assert_allclose(in_spark, here, rtol=1e-4, atol=1e-5)
    assert not np.allclose(in_spark[0], in_spark[1])  # the network does see the pixels


def first_images(root: Path, per_class: int, classes: int) -> list[Path]:
    """A fixed set: the first images (sorted) of the first classes of Training."""
    folders = sorted(path for path in (root / "Training").iterdir() if path.is_dir())
    return [image for folder in folders[:classes] for image in sorted(folder.iterdir())[:per_class]]


@pytest.mark.slow
def test_bf16_features_match_float32_on_real_images(fruits360: Path):
    cpu = this_cpu()
    if not cpu.bf16_flags:
        pytest.skip(
            f"this CPU ({cpu.model}) has neither amx_bf16 nor avx512_bf16: bf16 is not used "
            "on it, so there is nothing to compare"
        )
    from fruitlens import weights
    from fruitlens.pipeline import decode

    files = first_images(fruits360, per_class=4, classes=16)
    pixels = np.stack(
        [decode.decode(path.read_bytes(), 100, 1 << 30).pixels for path in files]
    ).astype(np.float32)
    seeded = weights.seeded_weights_file(0)
    outputs = {}
    for precision in (FP32, BF16):
        model = weights.build_vgg16(100, bf16=precision == BF16)
        weights.load_into(model, seeded)
        assert model.layers[1].compute_dtype == ("bfloat16" if precision == BF16 else "float32")
        outputs[precision] = featurize.compile_forward(model, 100)(pixels)
    fp32, bf16 = outputs[FP32], outputs[BF16]
    assert fp32.shape == bf16.shape == (len(files), weights.FEATURE_DIM)
    assert bf16.dtype == np.float32
    assert not np.array_equal(fp32, bf16)  # the bf16 path really ran in another arithmetic
    cosine = (fp32 * bf16).sum(axis=1) / (
        np.linalg.norm(fp32, axis=1) * np.linalg.norm(bf16, axis=1)
    )
    assert cosine.min() >= 0.9999, f"worst image {files[int(cosine.argmin())]}: {cosine.min()}"
