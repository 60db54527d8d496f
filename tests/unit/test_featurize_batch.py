"""featurize_batch, the pure function inside the featurize UDF: decode, batch, forward, reasons.

No Spark session and no TensorFlow: the network is a recording stand-in, so what is checked is
the bookkeeping around it (order, batching, which rows reach the network, reasons)."""

from __future__ import annotations

import dataclasses
import gc

import numpy as np
import pandas as pd
import pytest

from fruitlens import paths, session
from fruitlens.config import Config
from fruitlens.pipeline import decode, featurize
from fruitlens.pipeline.featurize import Cpu, FeaturizerSpec, WorkerModel, featurize_batch
from support.fakes import FEATURE_DIM, pooled_colours, stand_in
from support.images import bad_inputs, rgb_jpeg

SPEC = FeaturizerSpec("w.h5", "0" * 64, image_size=32, batch_size=2, max_pixels=10**6, threads=1)


class Recording:
    """A forward that remembers the batch shapes it was given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.shapes.append(batch.shape)
        return pooled_colours(batch)


def test_good_images_go_through_the_network_in_batches_and_keep_their_order():
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250)]
    contents = pd.Series([rgb_jpeg(colour, size=40) for colour in colours])
    forward = Recording()
    out = featurize_batch(contents, pd.Series([None] * 5), SPEC, lambda: stand_in(forward))
    assert forward.shapes == [(2, 32, 32, 3), (2, 32, 32, 3), (1, 32, 32, 3)]
    assert out["reason"].isna().all() and out["detail"].isna().all()
    assert all(len(row) == FEATURE_DIM and row.dtype == np.float32 for row in out["features"])
    # Row i holds image i's features: the whole-image mean colour (features 507..509) says so.
    means = np.stack([row[507:510] for row in out["features"]]) * 255
    np.testing.assert_allclose(means, np.array(colours, dtype=float), atol=3)


def test_every_bad_file_gets_its_reason_and_never_reaches_the_network():
    cases = bad_inputs()
    labelled = [name for name in cases if "/" in name]
    contents = pd.Series([cases[name][0] for name in cases])
    refusals = pd.Series([None if name in labelled else decode.NO_CLASS_FOLDER for name in cases])
    forward = Recording()
    out = featurize_batch(contents, refusals, SPEC, lambda: stand_in(forward))
    expected = [reason for _, reason in cases.values()]
    assert list(out["reason"].where(out["reason"].notna(), None)) == expected
    good = sum(reason is None for reason in expected)
    assert sum(shape[0] for shape in forward.shapes) == good
    for (_, reason), features, detail in zip(
        cases.values(), out["features"], out["detail"], strict=True
    ):
        assert (features is None) == (reason is not None)
        assert (detail is not None) == (reason is not None)


@pytest.mark.parametrize("refusal", [decode.NO_CLASS_FOLDER, decode.TOO_DEEP])
def test_a_file_refused_by_its_name_is_rejected_even_when_it_decodes(refusal: str):
    out = featurize_batch(
        pd.Series([rgb_jpeg()]), pd.Series([refusal]), SPEC, lambda: stand_in(Recording())
    )
    assert out["reason"].tolist() == [refusal]
    assert out["features"].tolist() == [None]


def test_a_batch_with_nothing_decodable_never_calls_the_network():
    def forbidden() -> WorkerModel:
        raise AssertionError("the network was built for undecodable files")

    out = featurize_batch(
        pd.Series([b"", b"not an image"]), pd.Series([None, None]), SPEC, forbidden
    )
    assert out["reason"].tolist() == [decode.EMPTY_FILE, decode.NOT_AN_IMAGE]


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batch_size_does_not_change_the_features(batch_size: int):
    contents = pd.Series([rgb_jpeg((i * 40, 255 - i * 40, 90), size=50) for i in range(5)])
    refusals = pd.Series([None] * 5)
    spec = FeaturizerSpec("w.h5", "0" * 64, 32, batch_size, 10**6, 1)
    reference = featurize_batch(contents, refusals, SPEC, stand_in)
    out = featurize_batch(contents, refusals, spec, stand_in)
    for left, right in zip(reference["features"], out["features"], strict=True):
        np.testing.assert_array_equal(left, right)


@pytest.mark.parametrize(
    ("flags", "asked", "expected"),
    [
        ({"avx2"}, "auto", 16),  # AVX2 alone (Zen 3, c6a): 16 was the faster there
        ({"avx2", "avx512f"}, "auto", 64),  # AVX-512 (c6i, c7a, c7i): 64 was
        ({"avx2", "avx512f", "amx_bf16"}, "auto", 64),
        ({"avx2", "avx512f"}, 3, 3),  # a number asked is a number used, on any CPU
        (set(), 40, 40),
    ],
)
def test_each_worker_takes_its_batch_size_from_its_own_cpu(flags, asked, expected):
    contents = pd.Series([rgb_jpeg((i, 255 - i, 90), size=40) for i in range(70)])
    forward = Recording()
    worker = dataclasses.replace(stand_in(forward), cpu=Cpu("test", frozenset(flags)))
    spec = dataclasses.replace(SPEC, batch_size=asked)
    out = featurize_batch(contents, pd.Series([None] * 70), spec, lambda: worker)
    assert [shape[0] for shape in forward.shapes[:-1]] == [expected] * (70 // expected)
    assert sum(shape[0] for shape in forward.shapes) == 70
    # run.json's account of each worker says which size it used.
    assert set(out["batch_size"]) == {str(expected)}


@pytest.mark.parametrize(("asked", "rows"), [("auto", 64), (16, 64), (64, 64), (200, 200)])
def test_an_arrow_batch_holds_any_forward_pass_a_worker_may_choose(asked, rows):
    assert featurize.arrow_batch_rows(asked) == rows
    for flags in ({"avx2"}, {"avx2", "avx512f"}):
        assert featurize.choose_batch_size(asked, Cpu("test", frozenset(flags))) <= rows
    # Featurizing sessions send batches that small; the JVM reads the next while one runs.
    config = Config(jars_dir=str(paths.cache_dir() / "jars"), batch_size=asked)
    setting = "spark.sql.execution.arrow.maxRecordsPerBatch"
    assert session.spark_settings(config, featurizes=True)[setting] == str(rows)
    assert session.spark_settings(config)[setting] == "256"  # train, evaluate: no images


def test_a_worker_s_model_is_built_once_and_kept_out_of_the_collector_s_walks(monkeypatch):
    """PySpark's reused workers run gc.collect() after every task; what the model holds (with
    TensorFlow and Keras, ~400 000 objects) is frozen once built, so those walks skip it."""
    built: list[FeaturizerSpec] = []

    def build(spec: FeaturizerSpec) -> WorkerModel:
        built.append(spec)
        return stand_in()

    monkeypatch.setattr(featurize, "_build_model", build)
    monkeypatch.setattr(featurize, "_WORKER_MODELS", {})
    try:
        model = featurize.worker_model(SPEC)
        assert featurize.worker_model(SPEC) is model and built == [SPEC]
        assert gc.get_freeze_count() > 0
        assert not any(tracked is model for tracked in gc.get_objects())
    finally:
        gc.unfreeze()  # this test process's objects go back to the collector
