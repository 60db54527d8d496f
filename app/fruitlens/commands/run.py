"""`fruitlens run`: featurize every image, reduce with PCA, train and evaluate a classifier,
and commit it all with run.json last (see outputs/commit.py)."""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame

from fruitlens import session, weights
from fruitlens.commands.evaluate import evaluate_and_save
from fruitlens.commands.preflight import (
    REFUSED,
    list_input,
    require_input,
    require_output,
    require_precision,
    require_trainable,
    warn_hidden,
)
from fruitlens.commands.train import train_and_save
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import names, report_page
from fruitlens.outputs.commit import OutputCommit
from fruitlens.outputs.report import RunReport, run_fingerprint
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import classify, featurize, images, plots, reduce

log = logging.getLogger(__name__)


def run_command(config: Config) -> dict[str, Any]:
    storage = Storage(config)
    require_input(config, storage)
    listing = list_input(config, storage)
    require_trainable(config, listing)
    output = require_output(config, storage)
    require_precision(config)
    warn_hidden(config, listing)
    resolved = weights.resolve(config.weights, storage.download)
    report = RunReport("run", config)
    # Cleans what a failed run left; datasets go to new versions until run.json commits them.
    commit = OutputCommit.begin(output, storage)
    spark = session.start_session(config, "fruitlens-run", listing.files, featurizes=True)
    previous = commit.previous_document
    # A committed run without a pca section stopped short (too few images): never kept.
    if config.incremental and previous.get("fingerprint") and "pca" in previous:
        with report.stage("fingerprint"):
            listed = images.inputs_digest(images.listed_inputs(spark, config, listing.listed))
        if run_fingerprint(config, listed, resolved) == previous["fingerprint"]:
            return keep_committed_run(previous, report, commit)
    starting = featurize.start_python_workers(spark)  # while the driver plans the featurize job
    stored, stored_size = featurize.stored_features(spark, config, previous, resolved)
    with report.stage("featurize"), session.job_description(spark, featurize.FEATURIZE_JOB):
        size = stored_size or config.image_size or featurize.native_size(storage, listing.listed)
        spec = featurize.shipped_spec(spark, config, resolved, size)
        result = featurize.featurize_and_count(
            spark, config, resolved, listing.listed, spec, stored=stored, starting=starting
        )
    report.record_featurization(result)
    report.sections["listing"] = listing.describe_hidden()
    report.sections["fingerprint"] = run_fingerprint(config, result.inputs_sha256, resolved)
    if stored is not None:
        report.sections["incremental"]["unchanged"] = False
    counts = result.counts
    processed = featurize.compact(result.processed)
    with report.stage("write_features", counts["listed"]):
        commit.parquet(processed, names.FEATURES)
        rejected_uri = commit.parquet(featurize.compact(result.rejected), names.REJECTED)
    if counts["processed"] < 2:
        why = (
            f"{counts['processed']} image(s) processed and {counts['rejected']} rejected "
            f"(see {rejected_uri}) of {counts['listed']} listed; PCA and a classifier need at "
            "least 2 processed images"
        )
        report.sections[REFUSED] = why
        commit.finish(report.to_dict(), [names.FEATURES, names.REJECTED])
        raise UsageError(why)
    features = processed.persist()
    with report.stage("pca", counts["processed"]):
        reduction = reduce.fit_reduction(
            features,
            counts["processed"],
            weights.FEATURE_DIM,
            config.pca_k,
            config.pca_variance,
            config.pca_max_k,
        )
        projected = reduce.project(reduction, features).persist()
        commit.parquet(projected, names.PCA)
        commit.put_csv(names.CLIENT_CSV, reduce.pca_columns(projected, reduction.k))
    target_variance = None if config.pca_k else config.pca_variance
    report.sections["pca"] = {
        **reduction.summary(target_variance),
        # Fewer images were processed than --pca-k asked for (rejections): k was lowered.
        "k_requested": config.pca_k,
    }
    report.sections["classifier"] = classify_if_possible(
        features, reduction.k, config, output, report, commit
    )
    if config.plots:
        with report.stage("plots"):
            drawn = plots.pca_plots(projected, reduction, target_variance, config.seed)
            for name, png in drawn.items():
                commit.put_bytes(name, png, "image/png")
    produced = [names.FEATURES, names.PCA, names.REJECTED, names.CLIENT_CSV, names.REPORT_HTML]
    produced += [names.PLOTS] if config.plots else []
    if report.sections["classifier"].get("trained"):
        produced += [names.PREDICTIONS, names.MODEL_JSON, names.EVALUATION_JSON]
    document = report.to_dict()
    with report.stage("report"):
        report_page.commit_run_page(document, commit, storage, config)
    # run.json last, in one PUT: the commit point; then the replaced versions are deleted.
    return commit.finish(document, produced)


def keep_committed_run(
    previous: dict[str, Any], report: RunReport, commit: OutputCommit
) -> dict[str, Any]:
    """Same files, weights and settings as the committed run: its outputs are this run's, and
    nothing is featurized, reduced or trained again."""
    log.info("--incremental: nothing changed since the committed run; its outputs stand")
    for section in ("images", "precision", "model", "pca", "classifier", "fingerprint"):
        if section in previous:
            report.sections[section] = previous[section]
    report.sections["incremental"] = {
        "unchanged": True,
        "reused_features": previous["images"]["processed"],
        "featurized_now": 0,
    }
    commit.keep_previous()
    return commit.finish(report.to_dict(), [])


def classify_if_possible(
    features: DataFrame,
    k: int,
    config: Config,
    output: str,
    report: RunReport,
    commit: OutputCommit,
) -> dict[str, Any]:
    parts = classify.split_for_training(features, config)
    if parts is None:
        return {"trained": False, "why": "no Training/Test folders and no --test-fraction"}
    training, test = parts
    with report.stage("train"):
        model, card = train_and_save(training, k, config, report.sections["model"], commit)
    with report.stage("evaluate"):
        scores = evaluate_and_save(model, card, test, config, commit)
    return {
        "trained": True,
        "name": config.classifier,
        "accuracy": scores["accuracy"],
        "macro_f1": scores["macro_f1"],
        "top3_accuracy": scores["top3_accuracy"],
        "test_images": scores["images"],
        "hyper_parameters": card.hyper_parameters,
        "imbalance_ratio": card.extra.get("imbalance_ratio"),
        "model": output,
    }
