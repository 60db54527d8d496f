"""The names of everything a command writes under --output; the README documents each entry.

Every writer and reader takes its names from here, so a dataset is never called two things.
"""

from __future__ import annotations

FEATURES = "features"
PCA = "pca"
REJECTED = "rejected"
PREDICTIONS = "predictions"
MODEL = "model"
TRAINING_IDS = "training_image_ids"
PLOTS = "plots"
CLIENT_CSV = "resultats_pca.csv"
PREDICTIONS_CSV = "predictions.csv"
EVALUATION_JSON = "evaluation.json"
MODEL_JSON = "model.json"
# The run's page (outputs/report_html.py), committed with the other single files.
REPORT_HTML = "report.html"
# `fruitlens report RUN RUN2 --output DIR` writes this page; it belongs to no run.
COMPARISON_HTML = "comparison.html"
# The manifests: run.json commits a run (and evaluate, predict, erase); train.json a model.
RUN_JSON = "run.json"
TRAIN_JSON = "train.json"
ERASURE_LOG = "erasure-log.jsonl"
# Leading "_": Spark's listing skips it when the sanitized copies are a later run's input.
SANITIZE_REPORT = "_sanitize_report.json"
# run.json's map of each single object's SHA-256: the fixed-name files (the client's CSV) are
# replaced a moment before run.json, so a reader can tell whether they belong to it.
FILES_SHA256 = "files_sha256"
EXPLAINED_VARIANCE_PNG = f"{PLOTS}/explained_variance.png"
PCA_SCATTER_PNG = f"{PLOTS}/pca_scatter.png"
CONFUSION_MATRIX_PNG = f"{PLOTS}/confusion_matrix.png"

# Datasets with rows per image: what `fruitlens erase` filters.
DATASETS = (FEATURES, PCA, REJECTED, PREDICTIONS)
# The CSVs with rows per image, erased like the datasets.
CSV_FILES = (CLIENT_CSV, PREDICTIONS_CSV)
# Folders written to a new version per run; model.json names its model folder's version, so
# the pair changes in one PUT.
VERSIONED = (*DATASETS, MODEL, TRAINING_IDS)
# Names a run writes as single objects (each one PUT); removed when left by a run that never
# committed (no manifest names them). erasure-log.jsonl and anything else are never touched.
SINGLE_OUTPUTS = (CLIENT_CSV, PREDICTIONS_CSV, EVALUATION_JSON, PLOTS, MODEL_JSON, REPORT_HTML)
