"""The classifier: a Spark ML Pipeline (standardise -> PCA -> classifier) chosen by CV.

The fitted pipeline is stored with Spark ML's own writer beside a model.json that records what
the model expects from the featurizer (weights checksum, image size), so `predict` can refuse
features it was not trained on.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing.pool import ThreadPool
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression, MultilayerPerceptronClassifier
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import IndexToString, StringIndexer
from pyspark.ml.functions import vector_to_array
from pyspark.ml.tuning import ParamGridBuilder
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

import fruitlens
from fruitlens import checksum, paths
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import names
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import reduce
from fruitlens.weights import FEATURE_DIM

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression

LABEL_INDEX = "label_index"
WEIGHT = "class_weight"
TOP_K = 3  # the ranking's length, never more than the model's classes (see `top_k`)
# model_dir is one folder name beside model.json (model, model@3): never a path elsewhere.
_MODEL_DIR = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]*$")
# Cross-validation prepares and fits a fold in one Python task while the fold's rows hold at most
# this many feature values (rows x 512): 80 MB of float64, a few times that with the
# preparation's copies, which a Python worker holds beside a default executor (about 19 500
# images). Beyond it, each fold is prepared on Spark and Spark ML fits each grid point.
IN_TASK_MAX_VALUES = 10_000_000


class ModelError(UsageError):
    pass


@dataclass
class ModelCard:
    """model.json: what the model is, what it was trained on, what it needs at predict time."""

    classes: list[str]
    training_counts: dict[str, int]
    weights: str
    weights_sha256: str
    image_size: int
    pca_k: int
    classifier: str
    hyper_parameters: dict[str, Any]
    fruitlens_version: str
    trained_on_image_ids_sha256: str
    cv_folds: int
    class_weights: bool
    extra: dict[str, Any] = field(default_factory=dict)
    # The Spark ML folder beside model.json (model@N after a rerun); relative, so a copied
    # model folder still loads.
    model_dir: str = names.MODEL
    # SHA-256 over every file of model_dir (see `model_digest`), recorded at save time and
    # checked at load: altered coefficients or a swapped folder are refused.
    model_sha256: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False)


def with_class_weights(training: DataFrame) -> DataFrame:
    """Weight each row by total / (classes x class count), so rare classes count as much."""
    counts = training.groupBy("label").count()
    total = training.count()
    classes = counts.count()
    weights = counts.select(
        F.col("label"), (F.lit(total) / (F.lit(classes) * F.col("count"))).alias(WEIGHT)
    )
    return training.join(weights, on="label", how="left")


def _estimator(kind: str, k: int, classes: int, weighted: bool, seed: int) -> tuple[Any, list]:
    if kind == "mlp":
        mlp = MultilayerPerceptronClassifier(
            featuresCol="pca",
            labelCol=LABEL_INDEX,
            layers=[k, 2 * k, classes],
            seed=seed,
            maxIter=200,
        )
        grid = ParamGridBuilder().addGrid(mlp.stepSize, [0.03, 0.1]).build()
        return mlp, grid
    logreg = LogisticRegression(
        featuresCol="pca", labelCol=LABEL_INDEX, family="multinomial", maxIter=100
    )
    if weighted:
        logreg.setWeightCol(WEIGHT)
    # From the weakest regularisation to the strongest: `choose_grid_point` relies on it.
    grid = ParamGridBuilder().addGrid(logreg.regParam, [0.001, 0.01, 0.1]).build()
    return logreg, grid


def preparation(k: int) -> Pipeline:
    """What the classifier's input goes through first: the label's index (alphabetical, an
    unseen label kept as an index of its own), the scaler and a k-component PCA."""
    indexer = StringIndexer(
        inputCol="label", outputCol=LABEL_INDEX, handleInvalid="keep", stringOrderType="alphabetAsc"
    )
    return Pipeline(stages=[indexer, *reduce.pca_pipeline(k).getStages()])


def train(
    training: DataFrame, k: int, kind: str, folds: int, weighted: bool, seed: int
) -> tuple[PipelineModel, dict[str, Any]]:
    """Fit the whole pipeline on Training only; CV picks the regularisation."""
    data = with_class_weights(training) if weighted else training
    prepared = preparation(k).fit(data)
    classes = len(prepared.stages[0].labels)
    if classes < 2:
        raise ModelError(f"training needs at least 2 classes, got {classes}")
    estimator, grid = _estimator(kind, k, classes, weighted, seed)
    scores = cross_validate(estimator, grid, data, folds, seed, k)
    best = choose_grid_point(scores, regularised=kind == "logreg")
    chosen = {param.name: value for param, value in grid[best].items()}
    chosen["cv_accuracy"] = float(scores[:, best].mean())
    chosen["cv_best_accuracy"] = float(scores.mean(axis=0).max())
    compact = _compact(prepared.transform(data)).persist()
    fitted = estimator.fit(compact, grid[best])
    compact.unpersist()
    labels = list(prepared.stages[0].labels)
    with_names = PipelineModel(
        stages=[
            *prepared.stages,
            fitted,
            IndexToString(inputCol="prediction", outputCol="predicted_label", labels=labels),
        ]
    )
    return with_names, chosen


def choose_grid_point(fold_scores: np.ndarray, regularised: bool) -> int:
    """The grid point cross-validation picks from its (folds x grid points) accuracies.

    `regularised`: the grid runs from the weakest regularisation to the strongest. Then the
    pick is the strongest one whose mean accuracy is within one standard error of the best
    mean (the one-standard-error rule, Hastie, Tibshirani & Friedman, The Elements of
    Statistical Learning, 7.10): grid points closer than that are not told apart by the
    folds, and taking the best mean among them lets noise choose, so two near-identical
    feature sets (fp32 and bf16) could get different models. Otherwise, the best mean (the
    first one on a tie).
    """
    means = fold_scores.mean(axis=0)
    best = int(np.argmax(means))
    if not regularised or fold_scores.shape[0] < 2:
        return best
    error = fold_scores[:, best].std(ddof=1) / np.sqrt(fold_scores.shape[0])
    return int(np.nonzero(means >= means[best] - error)[0].max())


def _compact(prepared: DataFrame) -> DataFrame:
    """What the classifier reads of a prepared table: k PCA values, the label, the weight.

    The label index leaves StringIndexer's metadata behind. With handleInvalid="keep" it lists
    one class more than Training holds (the index of labels Training never saw), and Spark ML's
    LogisticRegression takes its class count from it: it fitted that class too, which an odd
    image could then rank in its top 3, an index past the class names. Without the metadata the
    class count is the rows' own. (A cast to its own type is what drops it: withMetadata and
    alias take an empty metadata for none given and keep the old.)
    """
    keep = [
        F.col(name).cast("double").alias(name) if name == LABEL_INDEX else F.col(name)
        for name in ("pca", LABEL_INDEX, WEIGHT)
        if name in prepared.columns
    ]
    return prepared.select(*keep)


def cross_validate(
    estimator: Any, grid: list, data: DataFrame, folds: int, seed: int, k: int
) -> np.ndarray:
    """Validation accuracy of each fold (rows) and grid point (columns): Spark ML's
    CrossValidator's folds and metric, with the `preparation(k)` (label index, scaler, PCA)
    fitted once per fold instead of once per fold and grid point.

    A logistic regression's fold that fits one Python task (`IN_TASK_MAX_VALUES`) is prepared
    and scored there, the whole grid in one Spark job; otherwise (larger folds, the MLP) each
    fold is prepared on Spark and each fit is a Spark ML fit on the fold's k-wide table.
    """
    # The folds of CrossValidator._kFold: a seeded uniform column, fold i = [i/n, (i+1)/n).
    # Drawn once and cached: rand's values follow the rows' order in each partition, which a
    # re-planned evaluation (a join, AQE) may change, and a fold's preparation and its tables
    # must see the same rows.
    marked = data.select("*", F.rand(seed).alias("_fold_draw")).persist()
    draw = F.col("_fold_draw")
    held_out = [(draw >= fold / folds) & (draw < (fold + 1) / folds) for fold in range(folds)]
    if (
        isinstance(estimator, LogisticRegression)
        and marked.count() * FEATURE_DIM <= IN_TASK_MAX_VALUES
    ):
        reg_params = [point[estimator.regParam] for point in grid]
        scores = _score_in_tasks(reg_params, k, marked, held_out)
    else:
        tables = []
        for inside in held_out:
            kept = marked.where(~inside)
            fitted = preparation(k).fit(kept)
            tables.append(
                (_compact(fitted.transform(kept)), _compact(fitted.transform(marked.where(inside))))
            )
        scores = _score_with_spark_ml(estimator, grid, tables, data.sparkSession)
    marked.unpersist()
    return scores


def _score_with_spark_ml(
    estimator: Any, grid: list, tables: list[tuple[DataFrame, DataFrame]], spark: SparkSession
) -> np.ndarray:
    """Every fit of every fold side by side, each a Spark ML fit: each L-BFGS iteration is a
    tiny Spark job (~1 ms of arithmetic in a ~45 ms task on the bench's 1x slice), so one fold
    at a time, CrossValidator's way, left the scheduler waiting on the driver."""
    evaluator = MulticlassClassificationEvaluator(labelCol=LABEL_INDEX, metricName="accuracy")
    # Each table is read by every grid point's fit, every L-BFGS iteration: cached.
    tables = [(training.persist(), validation.persist()) for training, validation in tables]
    fits = [(fold, index) for fold in range(len(tables)) for index in range(len(grid))]
    # The pool's threads carry the caller's job properties, as CrossValidator's do.
    fit = inheritable_thread_target(spark)(
        partial(_fit_and_score, estimator, grid, evaluator, tables)
    )
    scores = np.zeros((len(tables), len(grid)))
    with ThreadPool(processes=len(fits)) as pool:
        for (fold, index), metric in zip(fits, pool.map(fit, fits), strict=True):
            scores[fold, index] = metric
    for training, validation in tables:
        training.unpersist()
        validation.unpersist()
    return scores


def _score_in_tasks(
    reg_params: list[float], k: int, marked: DataFrame, held_out: list[Column]
) -> np.ndarray:
    """One Spark job for the whole grid: each fold's rows (features, label, weight, held out
    or not) go to one Python task, which prepares them as `preparation(k)` would (see
    `reduce.fit_pca_like_spark`), fits every grid point with scikit-learn's L-BFGS on Spark
    ML's own objective (see `fit_like_spark`) and scores the held-out rows.

    The objective is strictly convex, so both optimisers reach the same model; only how close
    each gets to it differs (Spark stops after 100 iterations). The final model is still fitted
    by Spark ML, on the whole Training split."""
    weight = F.col(WEIGHT) if WEIGHT in marked.columns else F.lit(1.0)
    rows = [
        marked.select(
            F.lit(fold).alias("fold"),
            inside.alias("held_out"),
            vector_to_array(F.col("features")).alias("x"),
            F.col("label"),
            weight.cast("double").alias("w"),
        )
        for fold, inside in enumerate(held_out)
    ]
    stacked = rows[0]
    for more in rows[1:]:
        stacked = stacked.unionByName(more)
    scored = (
        stacked.groupBy("fold")
        .applyInPandas(
            partial(_fit_fold, reg_params, k), schema="fold int, point int, accuracy double"
        )
        .collect()
    )
    scores = np.zeros((len(held_out), len(reg_params)))
    for row in scored:
        scores[row["fold"], row["point"]] = row["accuracy"]
    return scores


def _fit_fold(reg_params: list[float], k: int, fold: pd.DataFrame) -> pd.DataFrame:
    """One fold's accuracy at each grid point, from its training and held-out rows."""
    training, validation = fold[~fold["held_out"]], fold[fold["held_out"]]
    # StringIndexer's alphabetical order; a label the training rows lack (its "keep" index)
    # is never predicted: an error, as in MulticlassClassificationEvaluator.
    classes = np.unique(training["label"].to_numpy())
    y = np.searchsorted(classes, training["label"].to_numpy())
    truth = validation["label"].to_numpy()
    accuracies = [float("nan")] * len(reg_params)  # no held-out row: 0/0, as Spark's metric
    if truth.size:
        if classes.size == 1:
            # A fold whose training rows hold one class: Spark ML's model predicts it always.
            accuracies = [float(np.mean(truth == classes[0]))] * len(reg_params)
        else:
            features = np.stack(training["x"].to_numpy())
            project = reduce.fit_pca_like_spark(features, k)
            x, w = project(features), training["w"].to_numpy()
            scale = spark_std(x, w)
            validation_x = project(np.stack(validation["x"].to_numpy())) / scale
            for point, reg_param in enumerate(reg_params):
                model = fit_like_spark(x / scale, y, w, reg_param)
                predicted = classes[model.predict(validation_x)]
                accuracies[point] = float(np.mean(predicted == truth))
    return pd.DataFrame(
        {"fold": int(fold["fold"].iloc[0]), "point": range(len(reg_params)), "accuracy": accuracies}
    )


def spark_std(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Each column's weighted unbiased standard deviation, Spark's Summarizer's; 1 for a
    constant column (Spark gives it no weight; its scale then does not matter)."""
    total = w.sum()
    mean = (w[:, None] * x).sum(axis=0) / total
    spread = (w[:, None] * (x - mean) ** 2).sum(axis=0) / (total - (w**2).sum() / total)
    std = np.sqrt(spread)
    return np.where(std > 0, std, 1.0)


def fit_like_spark(
    standardized: np.ndarray, y: np.ndarray, w: np.ndarray, reg_param: float
) -> SklearnLogisticRegression:
    """scikit-learn's LogisticRegression on the objective Spark ML's multinomial
    LogisticRegression minimises (L2, standardization on, intercepts unpenalised), given
    columns divided by `spark_std`:

        (1 / sum w) * sum_i w_i * loss_i  +  reg_param / 2 * ||beta||^2

    scikit-learn minimises C * sum_i w_i * loss_i + ||beta||^2 / 2, so C = 1 / (reg_param *
    sum w). With two classes scikit-learn fits one coefficient vector where Spark's
    multinomial family fits two opposite halves, whose penalty is half as big: C doubles."""
    # Only cross-validation's Python tasks fit with it: the driver never pays scikit-learn's
    # 2 s import at start-up.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression

    halves = 2.0 if np.unique(y).size == 2 else 1.0
    model = SklearnLogisticRegression(C=halves / (reg_param * w.sum()), tol=1e-8, max_iter=1000)
    with warnings.catch_warnings():
        # Spark stops at maxIter without a word; so does this, at a much tighter tolerance.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(standardized, y, sample_weight=w)


def _fit_and_score(
    estimator: Any,
    grid: list,
    evaluator: MulticlassClassificationEvaluator,
    tables: list[tuple[DataFrame, DataFrame]],
    fit: tuple[int, int],
) -> float:
    fold, index = fit
    training, validation = tables[fold]
    model = estimator.fit(training, grid[index])
    return evaluator.evaluate(model.transform(validation))


def classes_of(model: PipelineModel) -> list[str]:
    return list(model.stages[0].labels)


def top_k(classes: int) -> int:
    """A 2-class model ranks 2 labels, not 3."""
    return min(TOP_K, classes)


def score(model: PipelineModel, features: DataFrame, min_confidence: float = 0.0) -> DataFrame:
    """Predicted label, its probability and the top-k (label, probability) of each image, k =
    min(3, classes); the column keeps its name, top3."""
    labels = classes_of(model)
    scored = model.transform(features)
    probabilities = vector_to_array(F.col("probability"))
    ranked = F.slice(
        F.array_sort(
            F.transform(probabilities, lambda p, i: F.struct((-p).alias("neg"), i.alias("index")))
        ),
        1,
        top_k(len(labels)),
    )
    label_array = F.array(*[F.lit(label) for label in labels])
    top = F.transform(
        ranked,
        lambda item: F.struct(
            F.element_at(label_array, item["index"] + 1).alias("label"),
            (-item["neg"]).alias("probability"),
        ),
    )
    best_probability = F.array_max(probabilities)
    return scored.select(
        F.col("image_id"),
        F.col("path"),
        F.col("label"),
        F.col("split"),
        F.col(LABEL_INDEX),
        F.col("prediction"),
        F.when(best_probability >= F.lit(min_confidence), F.col("predicted_label"))
        .otherwise(F.lit("unknown"))
        .alias("predicted_label"),
        best_probability.alias("probability"),
        top.alias("top3"),
    )


def load_card(model_uri: str, storage: Storage) -> ModelCard:
    """model.json alone: enough to check compatibility before any Spark work."""
    card_uri = paths.join(model_uri, names.MODEL_JSON)
    if not storage.exists(card_uri):
        raise ModelError(f"{model_uri} holds no {names.MODEL_JSON}: not a fruitlens model")
    try:
        return ModelCard(**json.loads(storage.read_bytes(card_uri)))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{card_uri} is corrupt: {exc}") from exc


def model_digest(model_folder: str, storage: Storage) -> str:
    """SHA-256 over the sorted (relative path, SHA-256) of every file of a saved Spark model."""
    lines = sorted(
        f"{relative}\t{checksum.sha256(storage.read_bytes(uri))}"
        for uri, relative, _ in storage.list_files(model_folder)
    )
    return checksum.sha256("\n".join(lines).encode("utf-8"))


def save_model(model: PipelineModel, card: ModelCard, folder: str, storage: Storage) -> None:
    """Write the Spark model to `folder` (beside model.json) and record its name and digest."""
    model.write().overwrite().save(folder)
    card.model_dir = folder.rstrip("/").rsplit("/", 1)[-1]
    card.model_sha256 = model_digest(folder, storage)


def verified_model_folder(model_uri: str, card: ModelCard, storage: Storage) -> str:
    """The model folder model.json names, refused when it lies outside the model or its files
    are not the ones saved."""
    if not _MODEL_DIR.match(card.model_dir) or card.model_dir in {".", ".."}:
        raise ModelError(
            f"{model_uri}/{names.MODEL_JSON} names model_dir {card.model_dir!r}: a model folder "
            "must be a folder beside model.json, not a path elsewhere"
        )
    folder = paths.join(model_uri, card.model_dir)
    if not card.model_sha256:
        raise ModelError(
            f"{model_uri}/{names.MODEL_JSON} records no model_sha256, so its files cannot be "
            "checked: retrain it with this fruitlens version"
        )
    if model_digest(folder, storage) != card.model_sha256:
        raise ModelError(
            f"{folder} differs from the digest {names.MODEL_JSON} recorded at training time: the "
            "model files were altered or replaced; retrain or restore them"
        )
    return folder


def load(model_uri: str, storage: Storage) -> tuple[PipelineModel, ModelCard]:
    card = load_card(model_uri, storage)
    folder = verified_model_folder(model_uri, card, storage)
    try:
        model = PipelineModel.load(folder)
    except Exception as exc:  # Spark raises Py4J/IllegalArgument/AnalysisException alike
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{model_uri}/{card.model_dir} is not a readable Spark ML model: {first_line}"
        ) from exc
    return model, card


def check_compatible(card: ModelCard, weights_sha256: str, image_size: int) -> None:
    """A model only understands features made with its own weights at its own size."""
    if card.weights_sha256 != weights_sha256:
        raise ModelError(
            f"model was trained on features from weights {card.weights} (SHA-256 "
            f"{card.weights_sha256[:12]}...), these come from SHA-256 {weights_sha256[:12]}...; "
            "featurize with the model's weights"
        )
    if card.image_size != image_size:
        raise ModelError(
            f"model expects {card.image_size}px images, the features were made at {image_size}px"
        )


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


def model_card(
    model: PipelineModel,
    chosen: dict[str, Any],
    training: DataFrame,
    k: int,
    config: Config,
    featurizer: dict[str, Any],
) -> ModelCard:
    """model.json for a fitted model, with the featurizer settings it will demand at predict
    time (`featurizer`: the `model` section of the run that made the features)."""
    balance = class_balance(training)
    # Erasure needs to know whether a model saw an image; the digest fingerprints the set.
    ids = F.concat_ws(",", F.sort_array(F.collect_list("image_id")))
    ids_digest = training.select(F.sha2(ids, 256)).first()[0]
    return ModelCard(
        classes=classes_of(model),
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


def flat_predictions(scored: DataFrame, classes: int) -> DataFrame:
    """The client's CSV shape: top-k as plain columns instead of an array of structs."""
    columns = [F.col("image_id"), F.col("path"), F.col("predicted_label"), F.col("probability")]
    for rank in range(top_k(classes)):
        item = F.element_at(F.col("top3"), rank + 1)
        columns += [
            item["label"].alias(f"top{rank + 1}_label"),
            item["probability"].alias(f"top{rank + 1}_probability"),
        ]
    return scored.select(*columns)


def model_verdict(
    spark: SparkSession,
    storage: Storage,
    output: str,
    outputs: dict[str, str],
    features: DataFrame | None,
    id_list: list[str],
) -> dict[str, Any]:
    """Did the model trained in a run (`outputs`: its run.json map) see one of these images?
    Exact when the training ids are stored."""
    card_uri = outputs.get(names.MODEL_JSON, paths.join(output, names.MODEL_JSON))
    if not storage.exists(card_uri):
        return {"trained_model": False, "retrain_required": False}
    card = json.loads(storage.read_bytes(card_uri))
    model_root = card_uri.rsplit("/", 1)[0]
    ids_uri = outputs.get(names.TRAINING_IDS, paths.join(model_root, names.TRAINING_IDS))
    verdict: dict[str, Any] = {"trained_model": True, "model": model_root}
    if storage.has_children(ids_uri):
        seen = spark.read.parquet(ids_uri).where(F.col("image_id").isin(id_list)).count()
        verdict.update(erased_images_in_training=seen, retrain_required=seen > 0, exact=True)
        return verdict
    digest = card.get("trained_on_image_ids_sha256")
    if features is not None and digest and "split" in features.columns:
        # Without the stored list, the Training split of the features reproduces the digest
        # when it is the set the model was trained on.
        training = features.where(F.col("split") == "Training")
        joined = F.concat_ws(",", F.sort_array(F.collect_list("image_id")))
        if training.select(F.sha2(joined, 256)).first()[0] == digest:
            seen = training.where(F.col("image_id").isin(id_list)).count()
            verdict.update(erased_images_in_training=seen, retrain_required=seen > 0, exact=True)
            return verdict
    verdict.update(
        erased_images_in_training=None,
        retrain_required=bool(id_list),
        exact=False,
        why="the training set cannot be reconstructed; retrain to be sure",
    )
    return verdict
