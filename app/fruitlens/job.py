"""The commands' orchestration: preflight checks, then Spark stages, then outputs and run.json.

Each function here reads as the recipe of one command; the work itself lives in the modules
named for it (images, featurize, reduce, classify, evaluate, write, plots).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

import fruitlens
from fruitlens import checksum, paths, session, weights
from fruitlens.config import Config
from fruitlens.errors import Failure, UsageError
from fruitlens.outputs import names
from fruitlens.outputs.commit import OutputCommit, write_json, write_parquet
from fruitlens.outputs.report import RunReport
from fruitlens.outputs.storage import Storage, local_path
from fruitlens.pipeline import classify, decode, evaluate, images, plots, reduce
from fruitlens.pipeline.featurize import (
    FeaturizerSpec,
    featurize_images,
    processed_rows,
    rejected_rows,
)

log = logging.getLogger(__name__)

SCATTER_POINTS = 5000
SIZE_PROBE_FILES = 32
# Settings that change a run's outputs for the same images: `--incremental` keeps the committed
# outputs as they are only when these, the inputs and the featurizer are all unchanged.
RESULT_SETTINGS = (
    "input",
    "image_size",
    "max_pixels",
    "pca_k",
    "pca_variance",
    "pca_max_k",
    "classifier",
    "cv_folds",
    "test_fraction",
    "class_weights",
    "seed",
    "plots",
    "pseudonymize",
    "sse",
    "sse_kms_key",
)
# What each file looks like in the outputs; with the settings and weights, it decides the rest
# (a rejection follows from the bytes), so listing and hashing alone can tell "unchanged".
INPUT_FIELDS = ("image_id", "path", "label", "split")


@dataclass
class Featurized:
    processed: DataFrame
    rejected: DataFrame
    counts: dict[str, Any]
    spec: FeaturizerSpec
    resolved: weights.ResolvedWeights
    inputs_sha256: str


# --- preflight: everything that can fail before Spark does any work --------------------------
def require_input(config: Config, storage: Storage) -> str:
    if not config.input:
        raise UsageError("--input is required")
    if not storage.exists(config.input):
        raise UsageError(f"input {config.input} does not exist")
    if not storage.has_children(config.input):
        raise UsageError(f"input {config.input} is empty or is not a folder/prefix of images")
    if not paths.is_s3(config.input):
        loop = symlink_loop(Path(local_path(config.input)))
        if loop:
            raise UsageError(
                f"input {config.input} holds a symbolic link loop: {loop[0]} -> {loop[1]}; "
                "Spark's listing would follow it dozens of times (one image, many rows): "
                "remove the link"
            )
    return config.input


def symlink_loop(root: Path) -> tuple[Path, Path] | None:
    """A folder link under `root` that points back at one of its own ancestors, if any."""
    stack = [(root, frozenset({root.resolve()}))]
    while stack:
        folder, ancestors = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable: Spark will say so
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=True):
                    continue
                real = Path(entry.path).resolve(strict=True)
            except (OSError, RuntimeError):
                continue  # a dangling or self-resolving link lists nothing
            if real in ancestors:
                return Path(entry.path), real
            stack.append((Path(entry.path), ancestors | {real}))
    return None


def require_output(config: Config, storage: Storage) -> str:
    if not config.output:
        raise UsageError("--output is required")
    if storage.has_children(config.output) and not (config.overwrite or config.incremental):
        if not storage.exists(paths.join(config.output, names.RUN_JSON)):
            raise UsageError(
                f"output {config.output} holds files but no {names.RUN_JSON} (a run that "
                "failed, or files of another tool); pass --overwrite to replace them"
            )
        raise UsageError(
            f"output {config.output} already holds files; pass --overwrite to replace them "
            "(or --incremental to reuse their features)"
        )
    return config.output


def resolve_weights(config: Config, storage: Storage) -> weights.ResolvedWeights:
    try:
        return weights.resolve(config.weights, storage.download)
    except weights.WeightsError as exc:
        raise UsageError(str(exc)) from exc


# --- featurization -----------------------------------------------------------------------------
def native_size(files: DataFrame) -> int:
    """The images' own side length: the commonest larger side among the first files."""
    sizes = Counter()
    for row in files.select("content").limit(SIZE_PROBE_FILES).collect():
        found = decode.image_size(row["content"] or b"")
        if found:
            sizes[max(found)] += 1
    return sizes.most_common(1)[0][0] if sizes else 100


def featurize(
    spark: SparkSession,
    config: Config,
    resolved: weights.ResolvedWeights,
    image_size: int | None,
    require_label: bool,
    stored: DataFrame | None = None,
) -> tuple[DataFrame, FeaturizerSpec]:
    """Read, name and featurize every file under --input; the result is cached for reuse.

    `stored` (image_id, features) are features of an earlier run made with the same weights and
    size: images whose content id is among them are not featurized again.
    """
    files = images.read_binary_files(spark, str(config.input))
    root = images.qualified_root(spark, str(config.input))
    named = images.with_names(files, root)
    spark.sparkContext.addFile(str(resolved.local_path))
    spec = FeaturizerSpec(
        weights_file_name=resolved.local_path.name,
        weights_sha256=resolved.sha256,
        image_size=image_size or config.image_size or native_size(files),
        batch_size=config.batch_size,
        max_pixels=config.max_pixels,
        threads=int(spark.conf.get("spark.task.cpus", "1") or 1),
    )
    if stored is None:
        computed = featurize_images(named, spec, require_label)
    else:
        computed = reuse_stored_features(named, stored, spec, require_label)
    every_file = computed.unionByName(
        images.unscanned_files(spark, files), allowMissingColumns=True
    )
    return as_written(every_file, config).persist(), spec


def as_written(every_file: DataFrame, config: Config) -> DataFrame:
    """The path column as the outputs hold it: the content id when --pseudonymize."""
    if config.pseudonymize:
        return every_file.withColumn("path", F.col("image_id"))
    return every_file


def listed_inputs(spark: SparkSession, config: Config) -> DataFrame:
    """Every file under --input as the outputs name it, from listing and hashing alone."""
    files = images.read_binary_files(spark, str(config.input))
    named = images.with_names(files, images.qualified_root(spark, str(config.input)))
    columns = [F.col(name) for name in INPUT_FIELDS]
    every_file = named.select(*columns).unionByName(
        images.unscanned_files(spark, files).select(*columns)
    )
    return as_written(every_file, config)


def reuse_stored_features(
    named: DataFrame, stored: DataFrame, spec: FeaturizerSpec, require_label: bool
) -> DataFrame:
    """Stored features for known content ids, the network only for the new images."""
    marked = named.join(
        F.broadcast(stored.select(F.col("image_id"), F.lit(True).alias("stored"))),
        on="image_id",
        how="left",
    )
    reusable = F.col("stored").isNotNull()
    if require_label:
        reusable = reusable & F.col("label").isNotNull()
    known = (
        marked.where(reusable)
        .select(F.col("image_id"), F.col("path"), F.col("label"), F.col("split"))
        .join(F.broadcast(stored), on="image_id", how="inner")
        .select(
            F.col("image_id"),
            F.col("path"),
            F.col("label"),
            F.col("split"),
            F.col("features"),
            F.lit(None).cast("string").alias("reason"),
            F.lit(None).cast("string").alias("detail"),
            F.lit(True).alias("reused"),
        )
    )
    new = marked.where(~reusable).drop("stored")
    return featurize_images(new, spec, require_label).unionByName(known, allowMissingColumns=True)


def stored_features(
    spark: SparkSession, config: Config, previous: dict[str, Any], resolved: weights.ResolvedWeights
) -> tuple[DataFrame | None, int | None]:
    """Features of the run committed under --output (`previous`, its run.json), if --incremental
    and made the same way.

    They are copied into Spark's own block storage first (localCheckpoint) because this run
    may replace the very files they come from.
    """
    if not (config.incremental and previous):
        return None, None
    made_with = previous.get("model", {})
    size = made_with.get("image_size")
    if made_with.get("weights_sha256") != resolved.sha256 or (
        config.image_size is not None and config.image_size != size
    ):
        log.warning(
            "--incremental: stored features were made with other weights or size; "
            "featurizing everything again"
        )
        return None, None
    from pyspark.ml.functions import vector_to_array

    location = previous.get("outputs", {}).get(names.FEATURES)
    if not location:
        return None, None
    stored = spark.read.parquet(location).select(
        F.col("image_id"), vector_to_array(F.col("features"), "float32").alias("features")
    )
    return stored.dropDuplicates(["image_id"]).localCheckpoint(eager=True), int(size)


def inputs_digest(every_file: DataFrame) -> str:
    """SHA-256 over each file's (id, path, label, split) as the outputs name them."""
    fields = [F.coalesce(F.col(name), F.lit("")) for name in INPUT_FIELDS]
    lines = F.array_sort(F.collect_list(F.concat_ws("\t", *fields)))
    return every_file.select(F.sha2(F.concat_ws("\n", lines), 256)).first()[0]


def run_fingerprint(config: Config, digest: str, resolved: weights.ResolvedWeights) -> str:
    """What decides a run's outputs: inputs, weights, result settings, fruitlens version."""
    settings = config.public_dict()
    decisive = {
        "inputs_sha256": digest,
        "weights_sha256": resolved.sha256,
        "settings": {name: settings[name] for name in RESULT_SETTINGS},
        "fruitlens": fruitlens.__version__,
    }
    text = json.dumps(decisive, sort_keys=True, default=str)
    return checksum.sha256(text.encode("utf-8"))


def count_outcomes(featurized: DataFrame) -> dict[str, Any]:
    by_reason = {
        (row["reason"] or ""): int(row["count"])
        for row in featurized.groupBy("reason").count().collect()
    }
    processed = by_reason.pop("", 0)
    rejected = sum(by_reason.values())
    return {
        "listed": processed + rejected,
        "processed": processed,
        "rejected": rejected,
        "rejected_by_reason": dict(sorted(by_reason.items())),
    }


def featurize_and_account(
    spark: SparkSession,
    config: Config,
    report: RunReport,
    resolved: weights.ResolvedWeights,
    image_size: int | None = None,
    require_label: bool = True,
    stored: DataFrame | None = None,
) -> Featurized:
    with report.stage("featurize"):
        featurized, spec = featurize(spark, config, resolved, image_size, require_label, stored)
        counts = count_outcomes(featurized)
        digest = inputs_digest(featurized)
    if stored is not None:
        reused = featurized.where(F.col("reused")).count()
        report.sections["incremental"] = {
            "reused_features": reused,
            "featurized_now": counts["processed"] - reused,
        }
    elapsed = report.timings_s["featurize"]
    report.sections["images"] = counts
    report.sections["throughput_images_per_s"] = (
        round(counts["listed"] / elapsed, 3) if elapsed else None
    )
    report.sections["model"] = {
        "name": "VGG16",
        "include_top": False,
        "pooling": "avg",
        "image_size": spec.image_size,
        "feature_dim": weights.FEATURE_DIM,
        **resolved.describe(),
    }
    if counts["listed"] != counts["processed"] + counts["rejected"]:
        raise Failure(f"image accounting broken: {counts}")
    log.info(
        "featurized %d of %d images (%d rejected) at %s images/s",
        counts["processed"],
        counts["listed"],
        counts["rejected"],
        report.sections["throughput_images_per_s"],
    )
    return Featurized(
        processed_rows(featurized), rejected_rows(featurized), counts, spec, resolved, digest
    )


# --- classification ----------------------------------------------------------------------------
def split_for_training(processed: DataFrame, config: Config) -> tuple[DataFrame, DataFrame] | None:
    """Training/Test folders when both exist, else a seeded stratified hold-out if asked."""
    splits = {row["split"] for row in processed.select("split").distinct().collect()}
    if {"Training", "Test"} <= splits:
        return (
            processed.where(F.col("split") == "Training"),
            processed.where(F.col("split") == "Test"),
        )
    if config.test_fraction:
        order = Window.partitionBy("label").orderBy(F.rand(config.seed), F.col("image_id"))
        ranked = processed.withColumn("_rank", F.percent_rank().over(order))
        return (
            ranked.where(F.col("_rank") >= config.test_fraction).drop("_rank"),
            ranked.where(F.col("_rank") < config.test_fraction).drop("_rank"),
        )
    return None


def class_balance(training: DataFrame) -> dict[str, Any]:
    counts = {
        row["label"]: int(row["count"]) for row in training.groupBy("label").count().collect()
    }
    smallest, largest = min(counts.values()), max(counts.values())
    return {
        "training_counts": dict(sorted(counts.items())),
        "imbalance_ratio": round(largest / smallest, 3) if smallest else None,
    }


def train_and_save(
    training: DataFrame,
    k: int,
    config: Config,
    featurizer: dict[str, Any],
    output: str,
    storage: Storage,
    commit: OutputCommit | None = None,
) -> tuple[Any, classify.ModelCard]:
    """Fit, then save the model with the featurizer settings it will demand at predict time.

    `featurizer` is the `model` section of the run that made the features (run.json). Without
    a `commit`, model/ and training_image_ids/ are written in place; with one, as new versions
    that model.json (held until the commit) and run.json name.
    """
    model, chosen = classify.train(
        training, k, config.classifier, config.cv_folds, config.class_weights, config.seed
    )
    balance = class_balance(training)
    # Erasure needs to know whether a model saw an image; the digest fingerprints the set.
    ids = F.concat_ws(",", F.sort_array(F.collect_list("image_id")))
    ids_digest = training.select(F.sha2(ids, 256)).first()[0]
    card = classify.ModelCard(
        classes=classify.classes_of(model),
        training_counts=balance["training_counts"],
        weights=featurizer["weights"],
        weights_sha256=featurizer["weights_sha256"],
        image_size=int(featurizer["image_size"]),
        pca_k=k,
        classifier=config.classifier,
        hyper_parameters=chosen,
        fruitlens_version=fruitlens.__version__,
        trained_on_image_ids_sha256=ids_digest,
        cv_folds=config.cv_folds,
        class_weights=config.class_weights,
        extra={"imbalance_ratio": balance["imbalance_ratio"]},
    )
    # The exact set: `fruitlens erase` tells from it whether to retrain.
    training_ids = training.select("image_id").distinct()
    if commit is None:
        classify.save(model, card, output, storage)
        write_parquet(training_ids, paths.join(output, names.TRAINING_IDS))
        return model, card
    model_uri = commit.folder(names.MODEL)
    model.write().overwrite().save(model_uri)
    card.model_dir = model_uri.rstrip("/").rsplit("/", 1)[-1]
    commit.put_bytes(names.MODEL_JSON, card.to_json().encode(), "application/json")
    commit.parquet(training_ids, names.TRAINING_IDS)
    return model, card


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


# --- the main job --------------------------------------------------------------------------------
def run_command(config: Config) -> dict[str, Any]:
    storage = Storage(config)
    require_input(config, storage)
    output = require_output(config, storage)
    resolved = resolve_weights(config, storage)
    report = RunReport("run", config)
    # Cleans what a failed run left; datasets go to new versions until run.json commits them.
    commit = OutputCommit.begin(output, storage)
    spark = session.start_session(config, "fruitlens-run")
    previous = commit.previous_document
    # A committed run without a pca section stopped short (too few images): never kept.
    if config.incremental and previous.get("fingerprint") and "pca" in previous:
        with report.stage("fingerprint"):
            listed = inputs_digest(listed_inputs(spark, config))
        if run_fingerprint(config, listed, resolved) == previous["fingerprint"]:
            return keep_committed_run(previous, report, commit)
    stored, stored_size = stored_features(spark, config, previous, resolved)
    result = featurize_and_account(spark, config, report, resolved, stored_size, stored=stored)
    report.sections["fingerprint"] = run_fingerprint(config, result.inputs_sha256, resolved)
    if stored is not None:
        report.sections["incremental"]["unchanged"] = False
    counts = result.counts
    processed = compact(result.processed)
    with report.stage("write_features", counts["listed"]):
        commit.parquet(processed, names.FEATURES)
        rejected_uri = commit.parquet(compact(result.rejected), names.REJECTED)
    if counts["processed"] < 2:
        commit.finish(report.to_dict(), [names.FEATURES, names.REJECTED])
        raise UsageError(
            f"only {counts['processed']} of {counts['listed']} images could be processed; "
            f"see {rejected_uri}"
        )
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
    report.sections["pca"] = {
        "k": reduction.k,
        "explained_variance": round(reduction.cumulative_variance, 6),
        "explained_variance_per_component": [round(v, 6) for v in reduction.explained_variance],
        "target_variance": None if config.pca_k else config.pca_variance,
    }
    report.sections["classifier"] = classify_if_possible(
        features, reduction.k, config, output, storage, report, commit
    )
    if config.plots:
        with report.stage("plots"):
            draw_pca_plots(projected, reduction, config, commit)
    produced = [names.FEATURES, names.PCA, names.REJECTED, names.CLIENT_CSV]
    produced += [names.PLOTS] if config.plots else []
    if report.sections["classifier"].get("trained"):
        produced += [names.PREDICTIONS, names.MODEL_JSON, names.EVALUATION_JSON]
    # run.json last, in one PUT: the commit point; then the replaced versions are deleted.
    return commit.finish(report.to_dict(), produced)


def compact(frame: DataFrame) -> DataFrame:
    """One partition per core for the feature tables (2 KB a row): the scan's split, one task per
    ~128 files, would make each PCA and cross-validation iteration a job of hundreds of tasks."""
    return frame.coalesce(frame.sparkSession.sparkContext.defaultParallelism)


def keep_committed_run(
    previous: dict[str, Any], report: RunReport, commit: OutputCommit
) -> dict[str, Any]:
    """Same files, weights and settings as the committed run: its outputs are this run's, and
    nothing is featurized, reduced or trained again."""
    log.info("--incremental: nothing changed since the committed run; its outputs stand")
    for section in ("images", "model", "pca", "classifier", "fingerprint"):
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
    storage: Storage,
    report: RunReport,
    commit: OutputCommit,
) -> dict[str, Any]:
    parts = split_for_training(features, config)
    if parts is None:
        return {"trained": False, "why": "no Training/Test folders and no --test-fraction"}
    training, test = parts
    featurizer = report.sections["model"]
    with report.stage("train"):
        model, card = train_and_save(training, k, config, featurizer, output, storage, commit)
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


def draw_pca_plots(
    projected: DataFrame, reduction: reduce.Reduction, config: Config, commit: OutputCommit
) -> None:
    target = None if config.pca_k else config.pca_variance
    commit.put_bytes(
        names.EXPLAINED_VARIANCE_PNG,
        plots.explained_variance(reduction.explained_variance, target),
        "image/png",
    )
    if reduction.k < 2:
        return
    from pyspark.ml.functions import vector_to_array

    total = projected.count()
    sample = (
        projected
        if total <= SCATTER_POINTS
        else projected.sample(fraction=SCATTER_POINTS / total, seed=config.seed)
    )
    rows = sample.select(vector_to_array(F.col("pca")).alias("pc"), F.col("label")).collect()
    import numpy as np

    points = np.array([row["pc"][:2] for row in rows])
    commit.put_bytes(
        names.PCA_SCATTER_PNG,
        plots.pca_scatter(points, [row["label"] for row in rows]),
        "image/png",
    )


# --- train / evaluate / predict on their own ----------------------------------------------------
def read_run_document(run_uri: str, storage: Storage) -> dict[str, Any]:
    """run.json of an earlier `fruitlens run` (its --output folder); checked before Spark starts."""
    run_json = paths.join(run_uri, names.RUN_JSON)
    if not storage.exists(run_json):
        raise UsageError(f"{run_uri} holds no {names.RUN_JSON}: pass the --output folder of a run")
    return json.loads(storage.read_bytes(run_json))


def read_features(spark: SparkSession, run_uri: str, document: dict[str, Any]) -> DataFrame:
    # run.json names the current version of each dataset (erasure swaps versions through it).
    default = paths.join(run_uri, names.FEATURES)
    return spark.read.parquet(document.get("outputs", {}).get(names.FEATURES, default))


def require_features_run(config: Config, storage: Storage) -> dict[str, Any]:
    """run.json of the run that --features names; checked before Spark starts."""
    if not config.features:
        raise UsageError("--features is required (the --output folder of a run)")
    return read_run_document(config.features, storage)


def train_command(config: Config) -> dict[str, Any]:
    storage = Storage(config)
    source = require_features_run(config, storage)
    output = require_output(config, storage)
    report = RunReport("train", config)
    spark = session.start_session(config, "fruitlens-train")
    features = read_features(spark, config.features, source)
    parts = split_for_training(features, config)
    training = parts[0] if parts else features
    rows = training.count()
    if rows < 2:
        raise UsageError(f"{config.features} holds {rows} training images; at least 2 are needed")
    with report.stage("choose_k", rows):
        k = reduce.fit_reduction(
            training, rows, weights.FEATURE_DIM, config.pca_k, config.pca_variance, config.pca_max_k
        ).k
    with report.stage("train", rows):
        _, card = train_and_save(training, k, config, source["model"], output, storage)
    report.sections["classifier"] = {
        "name": config.classifier,
        "pca_k": k,
        "training_images": rows,
        "hyper_parameters": card.hyper_parameters,
        "classes": len(card.classes),
    }
    document = report.to_dict()
    write_json(document, paths.join(output, names.TRAIN_JSON), storage)
    return document


def check_compatible(card: classify.ModelCard, weights_sha256: str, image_size: int) -> None:
    """A model only understands features made with its own weights at its own size."""
    if card.weights_sha256 != weights_sha256:
        raise UsageError(
            f"model was trained on features from weights {card.weights} (SHA-256 "
            f"{card.weights_sha256[:12]}...), these come from SHA-256 {weights_sha256[:12]}...; "
            "featurize with the model's weights"
        )
    if card.image_size != image_size:
        raise UsageError(
            f"model expects {card.image_size}px images, the features were made at {image_size}px"
        )


def require_model(config: Config, storage: Storage) -> str:
    if not config.model:
        raise UsageError("--model is required")
    if not storage.exists(config.model):
        raise UsageError(f"model {config.model} does not exist")
    return config.model


def evaluate_command(config: Config) -> dict[str, Any]:
    storage = Storage(config)
    source = require_features_run(config, storage)
    output = require_output(config, storage)
    require_model(config, storage)
    report = RunReport("evaluate", config)
    commit = OutputCommit.begin(output, storage)
    spark = session.start_session(config, "fruitlens-evaluate")
    model, card = classify.load(str(config.model), storage)
    features = read_features(spark, config.features, source)
    model_info = source.get("model", {})
    check_compatible(
        card, model_info.get("weights_sha256", ""), int(model_info.get("image_size", 0))
    )
    parts = split_for_training(features, config)
    test = parts[1] if parts else features
    with report.stage("evaluate"):
        scores = evaluate_and_save(model, card, test, config, commit)
    report.sections["classifier"] = {
        key: scores[key] for key in ("accuracy", "macro_f1", "top3_accuracy", "images")
    }
    produced = [names.EVALUATION_JSON, names.PREDICTIONS] + ([names.PLOTS] if config.plots else [])
    return commit.finish(report.to_dict(), produced)


def flat_predictions(scored: DataFrame) -> DataFrame:
    """The client's CSV shape: top-3 as plain columns instead of an array of structs."""
    columns = [F.col("image_id"), F.col("path"), F.col("predicted_label"), F.col("probability")]
    for rank in range(classify.TOP_K):
        item = F.element_at(F.col("top3"), rank + 1)
        columns += [
            item["label"].alias(f"top{rank + 1}_label"),
            item["probability"].alias(f"top{rank + 1}_probability"),
        ]
    return scored.select(*columns)


def predict_command(config: Config) -> dict[str, Any]:
    storage = Storage(config)
    require_input(config, storage)
    output = require_output(config, storage)
    card = classify.load_card(require_model(config, storage), storage)
    if config.image_size is not None and config.image_size != card.image_size:
        raise UsageError(
            f"model expects {card.image_size}px images, --image-size is {config.image_size}"
        )
    resolved = resolve_weights(config, storage)
    check_compatible(card, resolved.sha256, card.image_size)
    report = RunReport("predict", config)
    commit = OutputCommit.begin(output, storage)
    # The model is read through s3a, so only once the session has the jars and settings.
    spark = session.start_session(config, "fruitlens-predict")
    model, _ = classify.load(str(config.model), storage)
    result = featurize_and_account(
        spark, config, report, resolved, card.image_size, require_label=False
    )
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
        commit.put_csv(names.PREDICTIONS_CSV, flat_predictions(scored))
    report.sections["classifier"] = {"model": config.model, "classes": len(card.classes)}
    produced = [names.PREDICTIONS, names.REJECTED, names.PREDICTIONS_CSV]
    return commit.finish(report.to_dict(), produced)
