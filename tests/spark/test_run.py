"""The main job on local folders: every output, every awkward file accounted for, incremental
reruns. The network is the stand-in (tests/spark/conftest.py); test_vgg16.py checks VGG16."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from support.cli import invoke
from support.images import bad_inputs, write_tree
from support.paths import copy_slice

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REQUIRED_KEYS = [
    "images.listed",
    "images.processed",
    "images.rejected",
    "images.rejected_by_reason",
    "model.name",
    "model.weights",
    "model.weights_sha256",
    "model.image_size",
    "model.feature_dim",
    "pca.k",
    "pca.explained_variance",
    "classifier.accuracy",
    "timings_s",
    "throughput_images_per_s",
    "versions.spark",
    "versions.tensorflow",
    "versions.fruitlens",
    "config",
]


def lookup(document: dict, dotted: str):
    value = document
    for part in dotted.split("."):
        value = value[part]
    return value


@pytest.fixture(scope="module")
def mixed_input(fruits360: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real Fruits-360 slices (Training/Test, 5 classes) plus every awkward file we know of."""
    root = copy_slice(fruits360, tmp_path_factory.mktemp("mixed"), {"Training": 8, "Test": 4}, 5)
    return write_tree(root, bad_inputs())


@pytest.fixture(scope="module")
def first_run(mixed_input: Path, tmp_path_factory: pytest.TempPathFactory, spark) -> Path:
    output = tmp_path_factory.mktemp("run1") / "out"
    result = invoke(
        "run", "--input", str(mixed_input), "--output", str(output), "--weights", "seeded:0"
    )
    assert result.code == 0, result.stderr[-3000:]
    assert nothing_cached(spark)
    assert "fruitlens run finished" in result.stdout
    assert "NOT ImageNet" in result.stdout  # seeded weights are announced loudly
    # Not a terminal: whole progress lines (no redrawing), the last one with every file.
    assert "\r" not in result.stderr
    assert re.search(r"^featurize: (\d+)/\1 images \(100%\)", result.stderr, re.M)
    assert (output / "report.html").is_file()
    return output


def nothing_cached(spark) -> bool:
    """The tables a command cached end with it: the session that ran it keeps none, the
    --incremental run's local checkpoint included (session.release_cached)."""
    return bool(spark.sparkContext._jsc.getPersistentRDDs().isEmpty())


def read_parquet(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder)


def run_on(source: Path, output: Path, weights: str, *flags: str):
    """`fruitlens run` on a local folder, as a user types it."""
    return invoke(
        "run", "--input", str(source), "--output", str(output), "--weights", weights, *flags
    )


def test_run_json_has_every_key_and_the_invariant(first_run: Path, mixed_input: Path):
    document = json.loads((first_run / "run.json").read_text())
    for key in REQUIRED_KEYS:
        lookup(document, key)
    images = document["images"]
    files = [p for p in mixed_input.rglob("*") if p.is_file()]
    assert images["listed"] == len(files)
    assert images["processed"] + images["rejected"] == images["listed"]
    assert document["model"]["weights"] == "seeded:0"
    assert document["model"]["imagenet_features"] is False
    assert document["model"]["image_size"] == 100  # native size, not an upscale to 224
    assert document["config"]["weights"] == "seeded:0"


def test_run_json_says_which_precision_each_worker_used_on_which_cpu(first_run: Path, spark):
    from fruitlens.pipeline.featurize import (
        choose_batch_size,
        choose_precision,
        tensorflow_threads,
        this_cpu,
    )

    document = json.loads((first_run / "run.json").read_text())
    precision = document["precision"]
    assert precision["asked"] == "auto" == document["config"]["precision"]
    # Every processed image is counted under the precision its worker used, and the workers'
    # counts add up to the same total.
    assert sum(precision["images"].values()) == document["images"]["processed"]
    assert (
        sum(worker["images"] for worker in precision["workers"])
        == (document["images"]["processed"])
    )
    # Local mode: the workers run on this CPU, so they saw its flags and made its choice.
    cpu = this_cpu()
    expected, why = choose_precision("auto", cpu)
    assert set(precision["images"]) == {expected}
    for worker in precision["workers"]:
        assert worker["cpu_model"] == cpu.model
        assert worker["cpu_flags"] == list(cpu.reported_flags)
        assert (worker["precision"], worker["why"]) == (expected, why)
        # What the worker's TensorFlow runs with, as the session's settings give it.
        assert worker["tensorflow_threads"] == tensorflow_threads(
            dict(spark.sparkContext.getConf().getAll())
        )
        # --batch-size auto: the worker's CPU decided it.
        assert document["config"]["batch_size"] == "auto"
        assert worker["batch_size"] == choose_batch_size("auto", cpu)
    assert precision["driver_cpu"]["cpu_flags"] == list(cpu.reported_flags)


def test_every_awkward_file_is_processed_or_rejected_with_its_reason(
    first_run: Path, mixed_input: Path
):
    rejected = read_parquet(first_run / "rejected")
    reasons = {
        Path(path).relative_to(mixed_input).as_posix(): reason
        for path, reason in zip(
            rejected["path"].str.removeprefix("file:"), rejected["reason"], strict=True
        )
    }
    expected_rejections = {path: reason for path, (_, reason) in bad_inputs().items() if reason}
    assert reasons == expected_rejections
    features = read_parquet(first_run / "features")
    processed_paths = {
        Path(p.removeprefix("file:")).relative_to(mixed_input).as_posix() for p in features["path"]
    }
    for path, (_, reason) in bad_inputs().items():
        if reason is None:
            assert path in processed_paths, path
    document = json.loads((first_run / "run.json").read_text())
    expected_counts: dict[str, int] = {}
    for reason in expected_rejections.values():
        expected_counts[reason] = expected_counts.get(reason, 0) + 1
    assert document["images"]["rejected_by_reason"] == expected_counts


def test_labels_are_folder_names_kept_exactly(first_run: Path, mixed_input: Path):
    features = read_parquet(first_run / "features")
    labels = set(features["label"])
    assert "Pépino à l'été 2" in labels and "Odd Cases" in labels
    class_names = {p.name for p in (mixed_input / "Training").iterdir()}
    assert class_names <= labels
    assert any(" " in name for name in class_names)  # e.g. "Apple Golden 1"
    splits = features.groupby("split", dropna=False).size().to_dict()
    assert splits["Training"] == 5 * 8 and splits["Test"] == 5 * 4


def test_features_are_512_numbers_keyed_by_content_hash(first_run: Path):
    features = read_parquet(first_run / "features")
    for row in features.head(5).itertuples():
        data = Path(row.path.removeprefix("file:")).read_bytes()
        assert row.image_id == hashlib.sha256(data).hexdigest()
        vector = np.asarray(row.features["values"])
        assert vector.shape == (512,) and np.isfinite(vector).all() and vector.any()


def test_pca_outputs_have_k_components(first_run: Path):
    document = json.loads((first_run / "run.json").read_text())
    k = document["pca"]["k"]
    assert 1 <= k <= min(256, document["images"]["processed"])
    assert document["pca"]["explained_variance"] >= 0.95 - 1e-9
    pca = read_parquet(first_run / "pca")
    assert len(pca) == document["images"]["processed"]
    assert {len(v["values"]) for v in pca["pca"]} == {k}
    with (first_run / "resultats_pca.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == document["images"]["processed"]
    assert list(rows[0])[-k:] == [f"pc_{i}" for i in range(1, k + 1)]
    assert {row["label"] for row in rows} == set(pca["label"])


def test_plots_and_classifier_outputs_exist(first_run: Path):
    for name in ("explained_variance.png", "pca_scatter.png", "confusion_matrix.png"):
        data = (first_run / "plots" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, name
    document = json.loads((first_run / "run.json").read_text())
    assert document["classifier"]["trained"] is True
    assert 0.0 <= document["classifier"]["accuracy"] <= 1.0
    assert (first_run / "model.json").exists() and (first_run / "model").is_dir()


def test_output_holding_a_run_is_refused_without_overwrite(first_run: Path, mixed_input: Path):
    before = sorted(p.name for p in first_run.iterdir())
    result = invoke(
        "run", "--input", str(mixed_input), "--output", str(first_run), "--weights", "seeded:0"
    )
    assert result.code == 2 and "--overwrite" in result.stderr and "log4j" not in result.stderr
    assert sorted(p.name for p in first_run.iterdir()) == before


def test_flat_class_folders_featurize_without_a_classifier(tmp_path: Path, fruits360: Path):
    """Without Training/Test the job still featurizes and reduces; no classifier is trained."""
    source = sorted((fruits360 / "Training").iterdir())[:3]
    root = tmp_path / "flat"
    for class_dir in source:
        shutil.copytree(
            class_dir,
            root / class_dir.name,
            dirs_exist_ok=True,
            ignore=lambda folder, names: sorted(names)[6:],
        )
    result = invoke(
        "run",
        "--input",
        str(root),
        "--output",
        str(tmp_path / "o"),
        "--weights",
        "seeded:0",
        "--pca-k",
        "4",
        "--no-plots",
    )
    assert result.code == 0, result.stderr[-2000:]
    document = json.loads((tmp_path / "o" / "run.json").read_text())
    assert document["images"]["processed"] == 18 and document["pca"]["k"] == 4
    assert document["classifier"]["trained"] is False


def test_incremental_rerun_on_unchanged_input_keeps_the_committed_outputs(
    first_run: Path, mixed_input: Path, tmp_path: Path
):
    output = tmp_path / "unchanged"
    shutil.copytree(first_run, output)
    manifest = output / "run.json"
    # The copy's run.json must name the copy's own datasets, as after a move of the folder.
    manifest.write_text(manifest.read_text().replace(str(first_run), str(output)))
    before = json.loads(manifest.read_text())
    entries_before = sorted(entry.name for entry in output.iterdir())
    result = run_on(mixed_input, output, "seeded:0", "--incremental")
    assert result.code == 0, result.stderr[-3000:]
    after = json.loads(manifest.read_text())
    assert after["incremental"] == {
        "reused_features": before["images"]["processed"],
        "featurized_now": 0,
        "unchanged": True,
    }
    assert after["fingerprint"] == before["fingerprint"]
    assert after["outputs"] == before["outputs"]
    assert after["pca"] == before["pca"] and after["classifier"] == before["classifier"]
    assert after["images"] == before["images"]
    assert "pca" not in after["timings_s"] and "train" not in after["timings_s"]
    assert sorted(entry.name for entry in output.iterdir()) == entries_before


def test_incremental_rerun_featurizes_only_new_images(
    first_run: Path, mixed_input: Path, tmp_path: Path, spark
):
    output = tmp_path / "incremental"
    shutil.copytree(first_run, output)
    grown = tmp_path / "grown"
    shutil.copytree(mixed_input, grown)
    from support.images import rgb_jpeg

    (grown / "Odd Cases" / "brand-new.jpg").write_bytes(rgb_jpeg((1, 2, 3)))
    result = invoke(
        "run",
        "--input",
        str(grown),
        "--output",
        str(output),
        "--weights",
        "seeded:0",
        "--incremental",
        "--no-plots",
    )
    assert result.code == 0, result.stderr[-3000:]
    assert nothing_cached(spark)
    before = json.loads((first_run / "run.json").read_text())
    after = json.loads((output / "run.json").read_text())
    assert after["incremental"] == {
        "reused_features": before["images"]["processed"],
        "featurized_now": 1,
        "unchanged": False,
    }
    assert after["images"]["listed"] == before["images"]["listed"] + 1
    old = read_parquet(first_run / "features").set_index("image_id")
    # A rerun on an output holding a run writes the next version (features@2): follow run.json.
    new = read_parquet(output / after["outputs"]["features"]).set_index("image_id")
    for image_id in old.index:
        assert np.array_equal(
            np.asarray(old.at[image_id, "features"]["values"]),
            np.asarray(new.at[image_id, "features"]["values"]),
        )
    # The retrained model is a new version too, named by model.json and run.json.
    assert after["outputs"]["model"] == "model@2"
    assert after["outputs"]["training_image_ids"] == "training_image_ids@2"
    assert json.loads((output / "model.json").read_text())["model_dir"] == "model@2"
    assert not (output / "model").exists() and not (output / "training_image_ids").exists()
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "new.jpg").write_bytes(rgb_jpeg((200, 40, 40)))
    predicted = invoke(
        "predict",
        "--model",
        str(output),
        "--input",
        str(incoming),
        "--output",
        str(tmp_path / "predicted"),
        "--weights",
        "seeded:0",
    )
    assert predicted.code == 0, predicted.stderr[-3000:]
    assert len(read_parquet(tmp_path / "predicted" / "predictions")) == 1
