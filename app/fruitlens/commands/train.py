"""`fruitlens train`: a classifier on the stored features of a run, saved with its model card.

`train_and_save` is also the training step of `fruitlens run`.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame

from fruitlens import session, weights
from fruitlens.commands.preflight import require_features_run, require_output
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import names
from fruitlens.outputs.commit import OutputCommit
from fruitlens.outputs.report import RunReport
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import classify, reduce


def train_and_save(
    training: DataFrame,
    k: int,
    config: Config,
    featurizer: dict[str, Any],
    commit: OutputCommit,
) -> tuple[Any, classify.ModelCard]:
    """Fit, then commit the model with the featurizer settings it will demand at predict time.

    `featurizer` is the `model` section of the run that made the features (run.json). model/
    and training_image_ids/ are written as new versions that model.json (held until the
    commit) and the manifest name.
    """
    model, chosen = classify.train(
        training, k, config.classifier, config.cv_folds, config.class_weights, config.seed
    )
    card = classify.model_card(model, chosen, training, k, config, featurizer)
    classify.save_model(model, card, commit.folder(names.MODEL), storage=commit.storage)
    commit.put_bytes(names.MODEL_JSON, card.to_json().encode(), "application/json")
    # The exact set: `fruitlens erase` tells from it whether to retrain.
    commit.parquet(training.select("image_id").distinct(), names.TRAINING_IDS)
    return model, card


def train_command(config: Config) -> dict[str, Any]:
    storage = Storage(config)
    source = require_features_run(config, storage)
    output = require_output(config, storage)
    processed = int(source.document.get("images", {}).get("processed", 0) or 0)
    if config.pca_k is not None and processed and config.pca_k >= processed:
        raise UsageError(
            f"--pca-k {config.pca_k} is not below the {processed} images of {config.features}: "
            f"choose at most {max(processed - 1, 1)}"
        )
    report = RunReport("train", config)
    commit = OutputCommit.begin(output, storage, names.TRAIN_JSON)
    spark = session.start_session(config, "fruitlens-train")
    features = spark.read.parquet(source.dataset)
    parts = classify.split_for_training(features, config)
    training = parts[0] if parts else features
    rows = training.count()
    if rows < 2:
        raise UsageError(f"{config.features} holds {rows} training images; at least 2 are needed")
    with report.stage("choose_k", rows):
        k = reduce.fit_reduction(
            training, rows, weights.FEATURE_DIM, config.pca_k, config.pca_variance, config.pca_max_k
        ).k
    with report.stage("train", rows):
        _, card = train_and_save(training, k, config, source.document["model"], commit)
    report.sections["classifier"] = {
        "name": config.classifier,
        "pca_k": k,
        "training_images": rows,
        "hyper_parameters": card.hyper_parameters,
        "classes": len(card.classes),
    }
    return commit.finish(report.to_dict(), [names.MODEL_JSON])
