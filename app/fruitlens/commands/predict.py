"""`fruitlens predict`: label new images (no class folders needed) with a trained model."""

from __future__ import annotations

from typing import Any

from pyspark.sql import functions as F

from fruitlens import session, weights
from fruitlens.commands.preflight import (
    list_input,
    require_input,
    require_model,
    require_output,
    require_precision,
    warn_hidden,
)
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import names
from fruitlens.outputs.commit import OutputCommit
from fruitlens.outputs.report import RunReport
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import classify, featurize


def predict_command(config: Config) -> dict[str, Any]:
    storage = Storage(config)
    require_input(config, storage)
    listing = list_input(config, storage)
    output = require_output(config, storage)
    require_precision(config)
    card = classify.load_card(require_model(config, storage), storage)
    classify.verified_model_folder(str(config.model), card, storage)  # before Spark starts
    if config.image_size is not None and config.image_size != card.image_size:
        raise UsageError(
            f"model expects {card.image_size}px images, --image-size is {config.image_size}"
        )
    resolved = weights.resolve(config.weights, storage.download)
    classify.check_compatible(card, resolved.sha256, card.image_size)
    warn_hidden(config, listing)
    report = RunReport("predict", config)
    commit = OutputCommit.begin(output, storage)
    # The model is read through s3a, so only once the session has the jars and settings.
    spark = session.start_session(config, "fruitlens-predict", listing.files, featurizes=True)
    # While the driver loads the model and plans the featurize job.
    starting = featurize.start_python_workers(spark)
    model, _ = classify.load(str(config.model), storage)
    with report.stage("featurize"), session.job_description(spark, featurize.FEATURIZE_JOB):
        spec = featurize.shipped_spec(spark, config, resolved, card.image_size)
        result = featurize.featurize_and_count(
            spark, config, resolved, listing.listed, spec, require_label=False, starting=starting
        )
    report.record_featurization(result)
    report.sections["listing"] = listing.describe_hidden()
    with report.stage("predict", result.counts["processed"]):
        scored = classify.score(model, result.processed, config.min_confidence).persist()
        predictions = scored.select(
            F.col("image_id"),
            F.col("path"),
            F.col("predicted_label"),
            F.col("probability"),
            F.col("top3"),
        )
        commit.parquet(predictions, names.PREDICTIONS)
        commit.parquet(result.rejected, names.REJECTED)
        commit.put_csv(names.PREDICTIONS_CSV, classify.flat_predictions(scored, len(card.classes)))
    report.sections["classifier"] = {"model": config.model, "classes": len(card.classes)}
    produced = [names.PREDICTIONS, names.REJECTED, names.PREDICTIONS_CSV]
    return commit.finish(report.to_dict(), produced)
