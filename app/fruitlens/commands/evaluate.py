"""`fruitlens evaluate`: a trained model scored on the stored labelled features of a run.

`evaluate_and_save` is also the evaluation step of `fruitlens run`.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame

from fruitlens import session
from fruitlens.commands.preflight import require_features_run, require_model, require_output
from fruitlens.config import Config
from fruitlens.outputs import names, report_page
from fruitlens.outputs.commit import OutputCommit
from fruitlens.outputs.report import RunReport
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import classify, evaluate, plots


def evaluate_and_save(
    model: Any,
    card: classify.ModelCard,
    test: DataFrame,
    config: Config,
    commit: OutputCommit,
) -> dict[str, Any]:
    scored = classify.score(model, test).persist()
    scores = evaluate.metrics(scored, card.classes)
    commit.put_json(names.EVALUATION_JSON, scores)
    if config.plots:
        heatmap = plots.confusion_heatmap(
            scores["confusion_matrix"], card.classes, scores["accuracy"]
        )
        commit.put_bytes(names.CONFUSION_MATRIX_PNG, heatmap, "image/png")
    commit.parquet(scored.drop("label_index", "prediction"), names.PREDICTIONS)
    scored.unpersist()
    return scores


def evaluate_command(config: Config) -> dict[str, Any]:
    storage = Storage(config)
    source = require_features_run(config, storage)
    output = require_output(config, storage)
    classify.verified_model_folder(
        require_model(config, storage), classify.load_card(str(config.model), storage), storage
    )
    report = RunReport("evaluate", config)
    commit = OutputCommit.begin(output, storage)
    spark = session.start_session(config, "fruitlens-evaluate")
    model, card = classify.load(str(config.model), storage)
    features = spark.read.parquet(source.dataset)
    model_info = source.document.get("model", {})
    classify.check_compatible(
        card, model_info.get("weights_sha256", ""), int(model_info.get("image_size", 0))
    )
    parts = classify.split_for_training(features, config)
    test = parts[1] if parts else features
    with report.stage("evaluate"):
        scores = evaluate_and_save(model, card, test, config, commit)
    report.sections["classifier"] = {
        key: scores[key] for key in ("accuracy", "macro_f1", "top3_accuracy", "images")
    }
    produced = [names.EVALUATION_JSON, names.PREDICTIONS, names.REPORT_HTML]
    produced += [names.PLOTS] if config.plots else []
    document = report.to_dict()
    report_page.commit_run_page(document, commit, storage, config)
    return commit.finish(document, produced)
