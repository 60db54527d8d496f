"""The classification engine on real Fruits-360 slices: it learns, it is kept in S3, it refuses
what it cannot handle. Features come from the stand-in network (support.fakes): the engine
around the network is the point here."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from support.cli import invoke
from support.paths import copy_slice
from support.s3 import S3Server

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.s3]

# Every 4th class of the subset (11: two apples among ten other fruits), 15 + 5 images each:
# enough to show the engine learns far above chance, small enough to featurize in seconds.
CLASSES, EVERY = 11, 4
TRAIN_PER_CLASS = 15
TEST_PER_CLASS = 5


@pytest.fixture(scope="module")
def labelled(fruits360: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_slice(
        fruits360,
        tmp_path_factory.mktemp("classify"),
        {"Training": TRAIN_PER_CLASS, "Test": TEST_PER_CLASS},
        classes=CLASSES,
        every=EVERY,
    )


@pytest.fixture(scope="module")
def features_run(labelled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("features") / "run"
    result = invoke(
        "run",
        "--input",
        str(labelled),
        "--output",
        str(output),
        "--weights",
        "seeded:0",
        "--pca-k",
        "50",
    )
    assert result.code == 0, result.stderr[-3000:]
    return output


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> str:
    return s3_server.make_bucket(f"models-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def s3_model(s3_server: S3Server, bucket: str, features_run: Path) -> str:
    uri = f"s3a://{bucket}/models/v1"
    result = invoke(
        "train",
        "--features",
        str(features_run),
        "--output",
        uri,
        "--pca-k",
        "50",
        env={"FRUITLENS_S3_ENDPOINT": s3_server.endpoint},
    )
    assert result.code == 0, result.stderr[-3000:]
    return uri


def test_pipeline_learns_far_above_chance(features_run: Path, labelled: Path):
    document = json.loads((features_run / "run.json").read_text())
    classes = len(list((labelled / "Training").iterdir()))
    accuracy = document["classifier"]["accuracy"]
    assert classes == CLASSES
    assert accuracy > 0.8 > 8 / classes
    assert document["classifier"]["macro_f1"] > 0.75
    assert document["classifier"]["top3_accuracy"] >= accuracy


def test_model_json_describes_what_the_model_needs(s3_server: S3Server, bucket: str, s3_model: str):
    key = s3_model.removeprefix(f"s3a://{bucket}/") + "/model.json"
    card = json.loads(s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    assert len(card["classes"]) == CLASSES
    assert set(card["training_counts"].values()) == {TRAIN_PER_CLASS}
    assert card["image_size"] == 100 and card["pca_k"] == 50
    assert card["weights"] == "seeded:0" and len(card["weights_sha256"]) == 64
    assert "regParam" in card["hyper_parameters"]


def test_evaluate_writes_metrics_and_a_readable_heat_map(
    s3_server: S3Server, s3_model: str, features_run: Path, tmp_path: Path
):
    output = tmp_path / "eval"
    result = invoke(
        "evaluate",
        "--model",
        s3_model,
        "--features",
        str(features_run),
        "--output",
        str(output),
        env={"FRUITLENS_S3_ENDPOINT": s3_server.endpoint},
    )
    assert result.code == 0, result.stderr[-3000:]
    scores = json.loads((output / "evaluation.json").read_text())
    assert scores["images"] == CLASSES * TEST_PER_CLASS
    assert scores["accuracy"] > 0.8 and scores["top3_accuracy"] >= scores["accuracy"]
    assert set(scores["per_class"]) == set(scores["classes"])
    matrix = np.asarray(scores["confusion_matrix"])
    assert matrix.shape == (CLASSES, CLASSES) and matrix.sum() == scores["images"]
    assert (output / "plots" / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")


def test_predict_round_trip_through_s3(
    s3_server: S3Server, bucket: str, s3_model: str, labelled: Path
):
    client = s3_server.client()
    truth = {}
    for index, path in enumerate(sorted((labelled / "Test").rglob("*.jpg"))[::9]):
        key = f"incoming/photo-{index}.jpg"  # new images: no class folders
        client.upload_file(str(path), bucket, key)
        truth[f"s3a://{bucket}/{key}"] = path.parent.name
    result = invoke(
        "predict",
        "--model",
        s3_model,
        "--input",
        f"s3a://{bucket}/incoming",
        "--output",
        f"s3a://{bucket}/predictions/p1",
        "--weights",
        "seeded:0",
        env={"FRUITLENS_S3_ENDPOINT": s3_server.endpoint},
    )
    assert result.code == 0, result.stderr[-3000:]
    body = client.get_object(Bucket=bucket, Key="predictions/p1/predictions.csv")["Body"].read()
    predictions = pd.read_csv(io.BytesIO(body))
    assert set(predictions["path"]) == set(truth)
    assert {"top1_label", "top2_label", "top3_label", "top3_probability"} <= set(
        predictions.columns
    )
    correct = sum(row.predicted_label == truth[row.path] for row in predictions.itertuples())
    assert correct / len(truth) > 0.7
    assert (predictions["probability"] >= predictions["top2_probability"]).all()


def test_predict_refuses_features_from_other_weights(
    s3_server: S3Server, s3_model: str, labelled: Path, tmp_path: Path
):
    incoming = tmp_path / "incoming"  # its own input: the test runs alone or in any order
    incoming.mkdir()
    shutil.copy(next((labelled / "Test").rglob("*.jpg")), incoming / "photo.jpg")

    def predict(*flags: str):
        return invoke(
            "predict", "--model", s3_model, "--input", str(incoming),
            "--output", str(tmp_path / "p"), *flags,
            env={"FRUITLENS_S3_ENDPOINT": s3_server.endpoint},
        )  # fmt: skip

    other_weights = predict("--weights", "seeded:1")
    assert other_weights.code == 2 and "SHA-256" in other_weights.stderr
    last_line = other_weights.stderr.strip().splitlines()[-1]
    assert last_line.startswith("fruitlens predict: error:")
    other_size = predict("--weights", "seeded:0", "--image-size", "64")
    assert other_size.code == 2 and "100px" in other_size.stderr


def test_missing_and_corrupt_models_are_one_line_errors(features_run: Path, tmp_path: Path):
    images = tmp_path / "new"
    images.mkdir()
    shutil.copyfile(next((features_run / "plots").glob("*.png")), images / "x.png")

    def predict(model: Path, output: str):
        return invoke(
            "predict",
            "--model",
            str(model),
            "--input",
            str(images),
            "--output",
            str(tmp_path / output),
            "--weights",
            "seeded:0",
        )

    missing = predict(tmp_path / "no-model", "o1")
    assert missing.code == 2 and "does not exist" in missing.stderr
    corrupt = tmp_path / "corrupt-model"
    shutil.copytree(features_run / "model", corrupt / "model")
    shutil.copyfile(features_run / "model.json", corrupt / "model.json")
    for stage in (corrupt / "model" / "stages").iterdir():
        shutil.rmtree(stage / "metadata")
    broken = predict(corrupt, "o2")
    # The files no longer match model.json's digest: refused before Spark reads them.
    assert broken.code == 2 and "differs from the digest" in broken.stderr
    (corrupt / "model.json").write_text("{not json")
    garbled = predict(corrupt, "o3")
    assert garbled.code == 2 and "corrupt" in garbled.stderr


def test_empty_features_input_is_a_one_line_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    result = invoke("train", "--features", str(tmp_path / "empty"), "--output", str(tmp_path / "m"))
    assert result.code == 2 and "run.json" in result.stderr
    assert result.stderr.strip().count("\n") == 0
