"""Each Spark stage of fruitlens.pipeline on its own, DataFrame -> DataFrame, in the test
process's one local[1] session. The network is the pooled-colour stand-in (support.fakes) given
through the stage's own `model_for` parameter; tests/spark/test_vgg16.py runs the real one."""

from __future__ import annotations

import hashlib
import io
import socket
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pyspark.ml.linalg import Vectors
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from fruitlens import session
from fruitlens.commands.preflight import InputListing, list_input
from fruitlens.config import Config
from fruitlens.outputs import names
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import classify, evaluate, featurize, images, plots, reduce
from support.fakes import FEATURE_DIM, pooled_model_for
from support.images import bad_inputs, rgb_jpeg, write_tree
from support.s3 import S3Server

SPEC = featurize.FeaturizerSpec("unused.h5", "0" * 64, 100, 16, 10**6, 1)
COLOURS = {"Apple Red": (200, 30, 30), "Banana": (230, 220, 40), "Lime": (60, 200, 40)}


def fruit_tree(root: Path, per_split: dict[str, int]) -> Path:
    """Training/ and Test/ folders of three plain-coloured 'fruits', slightly varied per file."""
    for split, count in per_split.items():
        for label, (r, g, b) in COLOURS.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                # Each class one colour family, every file distinct bytes (unique content ids):
                # steps of 4+ levels survive JPEG's quantisation.
                step = 8 * i + (4 if split == "Test" else 0)
                shade = (r - step, g - step, b + step // 2)
                (folder / f"{i}.jpg").write_bytes(rgb_jpeg(shade))
    return root


def listing_of(root: Path | str, **settings) -> InputListing:
    config = Config(input=str(root), **settings)
    return list_input(config, Storage(config))


def named_files(spark: SparkSession, root: Path) -> tuple[DataFrame, DataFrame]:
    files = images.read_listed_files(spark, listing_of(root).listed.readable)
    return files, images.with_names(files, images.qualified_root(spark, str(root)))


@pytest.fixture(scope="module")
def odd_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("odd"), bad_inputs())


@pytest.fixture(scope="module")
def fruits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fruit_tree(tmp_path_factory.mktemp("fruits"), {"Training": 6, "Test": 3})


@pytest.fixture(scope="module")
def fruit_features(spark: SparkSession, fruits: Path) -> DataFrame:
    """The featurized fruits, held as rows in the driver: every test reads them without
    featurizing again (a persisted table would be dropped after each test, see conftest)."""
    _, named = named_files(spark, fruits)
    featurized = featurize.featurize_images(named, SPEC, model_for=pooled_model_for)
    processed = featurize.processed_rows(featurized)
    return spark.createDataFrame(processed.collect(), processed.schema)


# --- images: listing and naming ---------------------------------------------------------------
def test_with_names_labels_splits_and_content_ids(spark: SparkSession, odd_tree: Path):
    _, named = named_files(spark, odd_tree)
    by_path = {row["rel_path"]: row for row in named.collect()}
    expected = bad_inputs()
    # The listing keeps the 0-byte file apart from those to read (next test).
    assert set(by_path) == set(expected) - {"Odd Cases/empty.jpg"}
    accented = by_path["Pépino à l'été 2/d'angle «1».jpg"]
    assert accented["label"] == "Pépino à l'été 2" and accented["split"] is None
    assert by_path["stray-at-root.jpg"]["label"] is None
    for relative, row in by_path.items():
        assert row["image_id"] == hashlib.sha256(expected[relative][0]).hexdigest()


def test_training_and_test_folders_are_the_split(spark: SparkSession, fruits: Path):
    _, named = named_files(spark, fruits)
    splits = {(row["split"], row["label"]) for row in named.select("split", "label").collect()}
    assert splits == {(s, label) for s in ("Training", "Test") for label in COLOURS}


def binary_file_rows(spark: SparkSession, input_uri: str) -> set[tuple[str, int, bytes]]:
    scanned = images.read_binary_files(spark, input_uri).select("path", "length", "content")
    return {(row["path"], row["length"], bytes(row["content"])) for row in scanned.collect()}


def test_the_reader_reads_what_spark_s_binary_file_source_reads(
    spark: SparkSession, odd_tree: Path
):
    """Every readable listed file, under the path binaryFile gives it (accents, spaces,
    `a=b` folders), with the same bytes: the naming rule and the content ids rest on both."""
    read = images.read_listed_files(spark, listing_of(odd_tree).listed.readable).collect()
    assert {(row["path"], row["length"], bytes(row["content"])) for row in read} == {
        row for row in binary_file_rows(spark, str(odd_tree)) if row[1] > 0
    }


def test_the_reader_spreads_the_files_in_whole_waves_of_tasks(spark: SparkSession):
    cores = spark.sparkContext.defaultParallelism
    assert images.read_tasks(spark, 0) == 1
    assert images.read_tasks(spark, 3) == min(3, cores)
    full = images.FILES_PER_READ_TASK * cores
    assert images.read_tasks(spark, 10 * full) == 10 * cores
    assert images.read_tasks(spark, 10 * full + 1) == 11 * cores


def test_nothing_to_read_is_an_empty_frame_of_the_reader_s_columns(spark: SparkSession):
    nothing = images.read_listed_files(spark, {})
    assert nothing.columns == ["path", "length", "content"] and nothing.collect() == []


def test_a_listed_file_gone_before_its_read_fails_the_job_naming_it(
    spark: SparkSession, tmp_path: Path
):
    root = fruit_tree(tmp_path / "in", {"Training": 2})
    listed = listing_of(root).listed
    gone = root / "Training" / "Lime" / "1.jpg"
    gone.unlink()
    with pytest.raises(Exception, match=r"Lime/1\.jpg"):
        images.read_listed_files(spark, listed.readable).collect()


def s3a_requests(spark: SparkSession, uri: str) -> dict[str, int]:
    """The HEAD and GET requests s3a has sent for `uri`'s bucket in this JVM (its counters)."""
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    statistics = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    counters = statistics.getIOStatistics().counters()
    return {
        method: counters.get(f"action_http_{method.lower()}_request") for method in ("HEAD", "GET")
    }


def test_the_reader_gets_each_s3_object_with_one_request(
    spark: SparkSession, s3_server: S3Server, fruits: Path
):
    """binaryFile spent two HEAD requests before each GET; the listing's lengths spare both."""
    bucket = s3_server.make_bucket(f"reader-{uuid.uuid4().hex[:8]}")
    files = s3_server.upload_tree(fruits, bucket, "in")
    uri = f"s3a://{bucket}/in"
    listed = listing_of(uri, s3_endpoint=s3_server.endpoint).listed
    before = s3a_requests(spark, uri)
    read = images.read_listed_files(spark, listed.readable).collect()
    after = s3a_requests(spark, uri)
    assert len(read) == files
    assert {method: after[method] - before[method] for method in after} == {"HEAD": 0, "GET": files}
    assert {(row["path"], bytes(row["content"])) for row in read} == {
        (path, content) for path, _, content in binary_file_rows(spark, uri)
    }


def test_empty_and_oversized_files_become_rejections_from_the_listing(
    spark: SparkSession, odd_tree: Path
):
    sizes = {path.name: path.stat().st_size for path in odd_tree.rglob("*") if path.is_file()}
    limit = sorted(set(sizes.values()))[-2]  # the largest file alone is over it
    largest = max(sizes, key=sizes.__getitem__)
    rows = images.unread_files(spark, listing_of(odd_tree, max_file_bytes=limit).listed)
    by_name = {row["path"].rsplit("/", 1)[-1]: row for row in rows.collect()}
    assert set(by_name) == {"empty.jpg", largest}
    assert by_name["empty.jpg"]["reason"] == "empty_file"
    assert by_name["empty.jpg"]["image_id"] == hashlib.sha256(b"").hexdigest()
    too_large = by_name[largest]
    assert too_large["reason"] == "file_too_large"
    assert too_large["detail"] == f"{sizes[largest]} bytes exceeds max_file_bytes={limit}"
    # In the scan's own form: the path it would have written, hashed for the id.
    assert too_large["image_id"] == hashlib.sha256(too_large["path"].encode()).hexdigest()
    scanned = images.read_binary_files(spark, str(odd_tree)).select("path").collect()
    assert too_large["path"] in {row["path"] for row in scanned}


def test_the_listing_goes_into_folder_links_as_spark_s_does(spark: SparkSession, tmp_path):
    root = fruit_tree(tmp_path / "in", {"Training": 1})
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "empty.jpg").write_bytes(b"")
    (root / "Training" / "Linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    indexed = images.read_binary_files(spark, str(root)).inputFiles()
    linked = [images.hadoop_path_string(uri) for uri in indexed if "/Linked/" in uri]
    assert linked and listing_of(root).listed.empty == linked  # the same path, in Spark's form


def test_nothing_unread_adds_no_rows_nor_partition(spark: SparkSession, fruits: Path):
    _, named = named_files(spark, fruits)
    # No union with an empty frame: its task started a second Python daemon (with_unread).
    assert images.with_unread(spark, named, listing_of(fruits).listed) is named


def test_the_early_python_job_starts_the_daemon_the_featurize_udf_uses(
    spark: SparkSession, fruits: Path, monkeypatch: pytest.MonkeyPatch
):
    """featurize.StartingWorkers is an RDD job; the featurize UDF's daemon is a SQL runner's,
    whose key has SPARK_SIMPLIFIED_TRACEBACK. A featurizing session gives every Python function
    that variable (spark.executorEnv, which is pyspark's `environment`); this tier's does not."""

    def parent(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    def featurize_daemons() -> set[int]:
        _, named = named_files(spark, fruits)
        featurized = featurize.featurize_images(named, SPEC, model_for=pooled_model_for)
        workers = {row["worker"] for row in featurized.select("worker").collect()}
        return {parent(int(worker.rsplit("/", 1)[1])) for worker in workers}

    def started() -> set[int]:
        starting = featurize.start_python_workers(spark)
        starting.join()
        return set(starting.daemon_pids)

    without = started()
    assert without and without.isdisjoint(featurize_daemons())
    monkeypatch.setitem(spark.sparkContext.environment, session.SIMPLIFIED_TRACEBACK_VARIABLE, "1")
    assert started() == featurize_daemons()


def test_the_inputs_digest_is_the_one_spark_computed_for_runs_committed_before(
    spark: SparkSession, tmp_path: Path
):
    """Committed runs keep a fingerprint over the digest Spark computed (array_sort, sha2) before
    the driver did: the same, whatever the names' characters, case or missing labels."""
    root = tmp_path / "in"
    # One content: equal ids, so the lines' order is the paths'.
    for folder in ["apple", "Apple", "Äpfel", "Pomme é", "Zürich 🍎", "Ωmega", "ǅ"]:
        (root / "Training" / folder).mkdir(parents=True)
        (root / "Training" / folder / "ü.jpg").write_bytes(rgb_jpeg())
    (root / "loose é.jpg").write_bytes(rgb_jpeg())  # no class folder: no label
    every = images.listed_inputs(spark, Config(input=str(root)), listing_of(root).listed)
    fields = [F.coalesce(F.col(name), F.lit("")) for name in images.INPUT_FIELDS]
    lines = F.array_sort(F.collect_list(F.concat_ws("\t", *fields)))
    computed_by_spark = every.select(F.sha2(F.concat_ws("\n", lines), 256)).first()[0]
    assert images.inputs_digest(every) == computed_by_spark


def test_listed_inputs_digest_follows_content_and_pseudonymize(spark: SparkSession, tmp_path):
    root = fruit_tree(tmp_path / "in", {"Training": 2})
    plain = Config(input=str(root))
    hidden = Config(input=str(root), pseudonymize=True)
    files = listing_of(root).listed
    listed = images.listed_inputs(spark, hidden, files)
    assert all(row["path"] == row["image_id"] for row in listed.collect())
    before = images.inputs_digest(images.listed_inputs(spark, plain, files))
    assert before != images.inputs_digest(listed)
    assert before == images.inputs_digest(images.listed_inputs(spark, plain, files))  # stable
    (root / "Training" / "Lime" / "0.jpg").write_bytes(rgb_jpeg((1, 2, 3)))
    relisted = listing_of(root).listed  # as each run lists its input afresh
    assert before != images.inputs_digest(images.listed_inputs(spark, plain, relisted))


def test_paths_with_ids_finds_the_sources_of_content_ids(spark: SparkSession, fruits: Path):
    wanted = hashlib.sha256((fruits / "Test" / "Banana" / "1.jpg").read_bytes()).hexdigest()
    found = images.paths_with_ids(spark, str(fruits), [wanted])
    assert found == {images.normalize_path(str(fruits / "Test" / "Banana" / "1.jpg"))}
    assert images.paths_with_ids(spark, str(fruits / "gone"), [wanted]) == set()


# --- featurize: every file once, with features or a reason ------------------------------------
def test_featurize_images_gives_features_or_the_expected_reason(
    spark: SparkSession, odd_tree: Path
):
    _, named = named_files(spark, odd_tree)
    out = featurize.featurize_images(named, SPEC, model_for=pooled_model_for)
    rows = {row["path"].split("/", 3)[-1]: row for row in out.collect()}
    for relative, (_, reason) in bad_inputs().items():
        if relative == "Odd Cases/empty.jpg":
            continue
        row = next(value for key, value in rows.items() if key.endswith(relative))
        assert row["reason"] == reason, relative
        assert (row["features"] is None) == (reason is not None)
        if reason is None:
            assert len(row["features"]) == FEATURE_DIM


def test_counts_split_rows_into_processed_and_rejected(spark: SparkSession, odd_tree: Path):
    _, named = named_files(spark, odd_tree)
    out = featurize.featurize_images(named, SPEC, model_for=pooled_model_for)
    every = images.with_unread(spark, out, listing_of(odd_tree).listed)
    counts, workers, digest = featurize.count_outcomes(every)
    assert digest == images.inputs_digest(every)
    expected = [reason for _, reason in bad_inputs().values()]
    # Who featurized what: the one worker's facts, once, for every processed image.
    used, _ = featurize.choose_precision(SPEC.precision, featurize.this_cpu())
    assert [(w["precision"], w["images"]) for w in workers] == [(used, expected.count(None))]
    assert workers[0]["worker"].startswith(f"{socket.gethostname()}/")
    assert counts["listed"] == len(expected)
    assert counts["processed"] == expected.count(None)
    assert counts["rejected_by_reason"] == {
        reason: expected.count(reason) for reason in sorted(set(expected) - {None})
    }
    assert featurize.processed_rows(every).count() == counts["processed"]
    rejected = featurize.rejected_rows(every)
    assert rejected.columns == ["image_id", "path", "reason", "detail"]
    assert rejected.count() == counts["rejected"]


def test_predict_mode_featurizes_images_without_a_class_folder(spark: SparkSession, tmp_path):
    (tmp_path / "loose.jpg").write_bytes(rgb_jpeg())
    _, named = named_files(spark, tmp_path)
    out = featurize.featurize_images(named, SPEC, require_label=False, model_for=pooled_model_for)
    assert [row["reason"] for row in out.collect()] == [None]


def test_stored_features_are_reused_and_only_new_images_featurized(
    spark: SparkSession, fruits: Path
):
    _, named = named_files(spark, fruits)
    ids = sorted({row["image_id"] for row in named.select("image_id").collect()})
    known = ids[: len(ids) // 2]
    marker = [7.0] * FEATURE_DIM  # the stand-in network never gives this
    stored = spark.createDataFrame(
        [(i, marker) for i in known], "image_id string, features array<float>"
    )
    out = featurize.reuse_stored_features(
        named, stored, SPEC, True, model_for=pooled_model_for
    ).collect()
    assert len(out) == len(ids)
    for row in out:
        reused = row["image_id"] in known
        assert bool(row["reused"]) == reused
        assert (list(row["features"]) == marker) == reused


def listing_jobs(spark: SparkSession, input_uri: str) -> tuple[int, int]:
    """(Spark jobs that listing `input_uri` ran, files listed)."""
    tracker = spark.sparkContext.statusTracker()
    before = len(tracker.getJobIdsForGroup(None))
    listed = len(images.read_binary_files(spark, input_uri).inputFiles())
    return len(tracker.getJobIdsForGroup(None)) - before, listed


def test_many_class_folders_are_listed_without_a_spark_job(
    spark: SparkSession, s3_server: S3Server, tmp_path: Path
):
    # One more class folder than Spark lists without a job of its own by default
    # (spark.sql.sources.parallelPartitionDiscovery.threshold, 32), one image in each, and
    # hidden files and folders, which the listing skips.
    for i in range(33):
        (tmp_path / "Training" / f"class {i}").mkdir(parents=True)
        (tmp_path / "Training" / f"class {i}" / "0.jpg").write_bytes(rgb_jpeg((i, 0, 0)))
    for hidden in ("Training/class 0/.thumb.jpg", "Training/_scratch/1.jpg", ".git/2.jpg"):
        (tmp_path / hidden).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / hidden).write_bytes(rgb_jpeg((0, 0, 0)))
    assert listing_jobs(spark, str(tmp_path)) == (0, 33)
    bucket = s3_server.make_bucket(f"many-{uuid.uuid4().hex[:8]}")
    s3_server.upload_tree(tmp_path, bucket, "in")
    assert listing_jobs(spark, f"s3a://{bucket}/in") == (0, 33)


# --- reduce: PCA --------------------------------------------------------------------------------
def test_pca_with_fixed_k_and_with_a_variance_target(fruit_features: DataFrame):
    rows = fruit_features.count()
    fixed = reduce.fit_reduction(fruit_features, rows, FEATURE_DIM, 3, 0.9, 50)
    assert fixed.k == 3 and len(fixed.explained_variance) == 3
    target = reduce.fit_reduction(fruit_features, rows, FEATURE_DIM, None, 0.9, 50)
    assert target.cumulative_variance >= 0.9 - 1e-9
    assert target.k == reduce.choose_k(np.asarray(target.explained_variance), 0.9)
    # The target's k is sliced off a wider fit: the same components as a k-component fit's.
    direct = reduce.fit_reduction(fruit_features, rows, FEATURE_DIM, target.k, 0.9, 50)
    assert target.explained_variance == pytest.approx(direct.explained_variance, abs=1e-12)
    sliced, fitted = (
        np.array([row["pca"].toArray() for row in reduce.project(r, fruit_features).collect()])
        for r in (target, direct)
    )
    assert sliced == pytest.approx(fitted, abs=1e-9)
    summary = target.summary(0.9)
    assert summary["k"] == target.k and summary["target_variance"] == 0.9
    projected = reduce.project(fixed, fruit_features)
    assert projected.columns == ["image_id", "path", "label", "split", "pca"]
    table = reduce.pca_columns(projected, fixed.k)
    assert table.columns[-3:] == ["pc_1", "pc_2", "pc_3"] and table.count() == rows


def test_pca_fitted_with_numpy_projects_as_spark_ml_s(spark: SparkSession):
    # Unequal column scales and a constant column: what the scaler must get right.
    rng = np.random.default_rng(7)
    training = rng.normal(size=(40, 6)) * np.array([1.0, 5.0, 0.2, 3.0, 1.0, 0.0])
    training[:, 4] += training[:, 0]  # correlated columns: PCA's rotation matters
    unseen = rng.normal(size=(10, 6))
    frame = spark.createDataFrame([(Vectors.dense(row),) for row in training], ["features"])
    fitted = reduce.pca_pipeline(3).fit(frame)
    unseen_frame = spark.createDataFrame([(Vectors.dense(row),) for row in unseen], ["features"])
    spark_rows = np.array(
        [row["pca"].toArray() for row in fitted.transform(unseen_frame).collect()]
    )
    ours = reduce.fit_pca_like_spark(training, 3)(unseen)
    signs = np.sign((ours * spark_rows).sum(axis=0))  # a component's sign is arbitrary
    assert ours * signs == pytest.approx(spark_rows, abs=1e-9)


def test_k_is_capped_by_the_rows(fruit_features: DataFrame):
    few = fruit_features.limit(4)
    assert reduce.fit_reduction(few, 4, FEATURE_DIM, 10, 0.9, 50).k == 4


# --- classify and evaluate ----------------------------------------------------------------------
def test_split_for_training_uses_folders_or_a_seeded_fraction(fruit_features: DataFrame):
    training, test = classify.split_for_training(fruit_features, Config())
    assert training.count() == 18 and test.count() == 9
    flat = fruit_features.drop("split").withColumn("split", F.lit(None).cast("string"))
    assert classify.split_for_training(flat, Config()) is None
    first = classify.split_for_training(flat, Config(test_fraction=0.34, seed=3))
    again = classify.split_for_training(flat, Config(test_fraction=0.34, seed=3))
    held = sorted(row["image_id"] for row in first[1].collect())
    assert held == sorted(row["image_id"] for row in again[1].collect())
    assert 0 < len(held) < 27
    labels = {row["label"] for row in first[1].collect()}
    assert labels == set(COLOURS)  # stratified: every class in the hold-out


def test_class_weights_balance_the_classes(spark: SparkSession):
    data = spark.createDataFrame([("a",)] * 6 + [("b",)] * 2, "label string")
    weighted = classify.with_class_weights(data).groupBy("label").agg(F.sum(classify.WEIGHT))
    totals = {row[0]: row[1] for row in weighted.collect()}
    assert totals == pytest.approx({"a": 4.0, "b": 4.0})
    assert classify.class_balance(data) == {
        "training_counts": {"a": 6, "b": 2},
        "imbalance_ratio": 3.0,
    }


@pytest.fixture(scope="module")
def trained(fruit_features: DataFrame):
    training, test = classify.split_for_training(fruit_features, Config())
    model, chosen = classify.train(training, 3, "logreg", 2, True, 0)
    return model, chosen, training, test


def test_train_score_evaluate_and_the_model_card(trained):
    model, chosen, training, test = trained
    assert classify.classes_of(model) == sorted(COLOURS)
    # One probability per class Training holds: none for StringIndexer's "unseen label" index,
    # which no image can be predicted as (an index past the class names).
    assert model.stages[-2].numClasses == len(COLOURS)
    assert set(chosen) == {"regParam", "cv_accuracy", "cv_best_accuracy"}
    assert chosen["cv_accuracy"] <= chosen["cv_best_accuracy"]
    scored = classify.score(model, test)
    result = evaluate.metrics(scored, classify.classes_of(model))
    assert result["accuracy"] == 1.0 and result["images"] == 9  # plain colours: separable
    assert result["top3_accuracy"] == 1.0 and result["unseen_label_rows"] == 0
    assert np.trace(np.array(result["confusion_matrix"])) == 9
    flat = classify.flat_predictions(scored, len(COLOURS))
    assert flat.columns[:4] == ["image_id", "path", "predicted_label", "probability"]
    assert "top3_probability" in flat.columns
    featurizer = {"weights": "seeded:0", "weights_sha256": "ab" * 32, "image_size": 100}
    card = classify.model_card(model, chosen, training, 3, Config(), featurizer)
    assert card.classes == sorted(COLOURS) and card.pca_k == 3
    assert card.training_counts == {label: 6 for label in COLOURS}
    classify.check_compatible(card, "ab" * 32, 100)
    with pytest.raises(classify.ModelError, match="weights"):
        classify.check_compatible(card, "cd" * 32, 100)
    with pytest.raises(classify.ModelError, match="px"):
        classify.check_compatible(card, "ab" * 32, 64)


def overlapping_classes(classes: int, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and weights of overlapping classes, in columns of unequal scales with
    uneven weights: what the standardisation and the weighted penalty of fit_like_spark must
    get right, and what leaves cross-validation real errors to count."""
    rng = np.random.default_rng(classes)
    y = rng.integers(0, classes, rows)
    x = rng.normal(size=(rows, 4)) * np.array([1.0, 6.0, 0.1, 2.0]) + y[:, None] * 0.7
    return x, y, rng.uniform(0.5, 2.0, rows)


@pytest.mark.parametrize("classes", [2, 4])
def test_cross_validation_in_tasks_fits_spark_ml_s_own_model(spark: SparkSession, classes: int):
    x, y, w = overlapping_classes(classes, 90)
    table = spark.createDataFrame(
        [
            (Vectors.dense(row), float(label), float(weight))
            for row, label, weight in zip(x, y, w, strict=True)
        ],
        ["pca", classify.LABEL_INDEX, classify.WEIGHT],
    )
    estimator, grid = classify._estimator("logreg", 4, classes, True, 0)
    scale = classify.spark_std(x, w)
    for point in grid:
        spark_model = estimator.fit(table, point)
        spark_probabilities = np.array(
            [row["probability"].toArray() for row in spark_model.transform(table).collect()]
        )
        ours = classify.fit_like_spark(x / scale, y, w, point[estimator.regParam])
        assert ours.predict_proba(x / scale) == pytest.approx(spark_probabilities, abs=1e-4)


def test_cross_validation_scores_alike_in_tasks_and_with_spark_ml(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
):
    x, y, _ = overlapping_classes(3, 120)
    data = classify.with_class_weights(
        spark.createDataFrame(
            [(Vectors.dense(row), f"class {label}") for row, label in zip(x, y, strict=True)],
            ["features", "label"],
        )
    )
    estimator, grid = classify._estimator("logreg", 3, 3, True, 0)

    def scores(in_task_max_values: int) -> np.ndarray:
        monkeypatch.setattr(classify, "IN_TASK_MAX_VALUES", in_task_max_values)
        return classify.cross_validate(estimator, grid, data, 2, 1, 3)

    in_tasks = scores(10**6)
    assert 0.4 < in_tasks.mean() < 1.0  # real errors, so a fold or a point out of place shows
    assert in_tasks == pytest.approx(scores(0), abs=1e-9)


def test_min_confidence_turns_unsure_predictions_into_unknown(trained):
    model, _, _, test = trained
    unsure = classify.score(model, test, min_confidence=1.01)
    assert {row["predicted_label"] for row in unsure.collect()} == {"unknown"}


def test_training_needs_two_classes(fruit_features: DataFrame):
    one = fruit_features.where(F.col("label") == "Lime")
    with pytest.raises(classify.ModelError, match="at least 2 classes"):
        classify.train(one, 2, "logreg", 2, False, 0)


def test_labels_the_model_never_saw_count_as_errors(spark: SparkSession):
    scored = spark.createDataFrame(
        [
            (0.0, 0.0, "a", [("a", 0.9)]),
            (1.0, 1.0, "b", [("b", 0.8)]),
            (2.0, 0.0, "z", [("a", 0.7)]),
        ],
        "label_index double, prediction double, label string, "
        "top3 array<struct<label:string, probability:double>>",
    )
    result = evaluate.metrics(scored, ["a", "b"])
    assert result["confusion_matrix"] == [[1, 0], [0, 1], [1, 0]]
    assert result["unseen_label_rows"] == 1
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["top3_accuracy"] == pytest.approx(2 / 3)


# --- plots --------------------------------------------------------------------------------------
def test_pca_plots_are_pngs_named_as_the_outputs(fruit_features: DataFrame):
    reduction = reduce.fit_reduction(fruit_features, 27, FEATURE_DIM, 2, 0.9, 50)
    drawn = plots.pca_plots(reduce.project(reduction, fruit_features), reduction, None, 0)
    assert set(drawn) == {names.EXPLAINED_VARIANCE_PNG, names.PCA_SCATTER_PNG}
    for png in drawn.values():
        assert Image.open(io.BytesIO(png)).format == "PNG"
    one = reduce.fit_reduction(fruit_features, 27, FEATURE_DIM, 1, 0.9, 50)
    assert set(plots.pca_plots(reduce.project(one, fruit_features), one, 0.9, 0)) == {
        names.EXPLAINED_VARIANCE_PNG
    }


def test_the_confusion_heat_map_is_a_png():
    png = plots.confusion_heatmap(np.array([[3, 1], [0, 4]]), ["a", "b"], 0.875)
    assert Image.open(io.BytesIO(png)).size[0] > 100


def test_vectors_round_trip_as_features(spark: SparkSession):
    # processed_rows turns the UDF's float arrays into ML vectors, as PCA needs.
    frame = spark.createDataFrame(
        [("i", "p", "l", "Training", [1.0, 2.0], None, None)],
        "image_id string, path string, label string, split string, features array<float>, "
        "reason string, detail string",
    )
    row = featurize.processed_rows(frame).first()
    assert row["features"] == Vectors.dense([1.0, 2.0])
