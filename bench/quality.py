"""Does bf16 change anything a user sees? Two `fruitlens run` outputs on the same images compared.

The float32 run is the reference; the other (bf16) passes when, on the same Test images, its
accuracy and macro-F1 are within 0.3 points, its PCA k within 1, and at least 99.5 % of its Test
predictions are the reference's; where it featurized nothing in bf16 (a CPU without it), there
is no verdict. The features' per-image cosine is recorded beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Issue 12's limits: (value, comparison, limit).
LIMITS = {
    "accuracy_diff_points": ("<=", 0.3),
    "macro_f1_diff_points": ("<=", 0.3),
    "pca_k_diff": ("<=", 1),
    "test_predictions_agreeing": (">=", 0.995),
}


def dataset(run: Path, document: dict[str, Any], name: str) -> Any:
    import pandas as pd

    from fruitlens.outputs.commit import resolved_outputs

    # run.json names its outputs relative to the run: resolved against the run's folder.
    location = resolved_outputs(str(run), document).get(name, str(run / name))
    return pd.read_parquet(location.removeprefix("file:"))


def top_lead(top: Any) -> float:
    """A prediction's top-k (label, probability) entries -> the first's lead over the second."""
    probabilities = sorted((entry["probability"] for entry in top), reverse=True)
    return probabilities[0] - (probabilities[1] if len(probabilities) > 1 else 0.0)


def verdict(checks: dict[str, dict[str, Any]], other_images: dict[str, int] | None) -> bool | None:
    """Every check met; None where the compared run featurized no image in bf16. A CPU
    without bf16 falls back to fp32, and a pass would then say nothing about bf16."""
    from fruitlens.pipeline.featurize import BF16  # run.json's name for it

    if not (other_images or {}).get(BF16):
        return None
    return all(check["met"] for check in checks.values())


def compare_runs(reference: Path, other: Path) -> dict[str, Any]:
    import numpy as np

    documents = [json.loads((run / "run.json").read_text()) for run in (reference, other)]
    classifiers = [document["classifier"] for document in documents]
    ks = [document["pca"]["k"] for document in documents]
    predictions = [
        dataset(run, document, "predictions").set_index("image_id")
        for run, document in zip((reference, other), documents, strict=True)
    ]
    joined = (
        predictions[0]["predicted_label"]
        .to_frame("reference")
        .join(predictions[1]["predicted_label"].rename("other"), how="inner")
    )
    # How far the reference's top class led the next one: a changed prediction with a tiny
    # lead is a near-tie that any rounding could tip, one with a large lead is not.
    lead = predictions[0]["top3"].map(top_lead).reindex(joined.index)
    features = [
        dataset(run, document, "features").set_index("image_id")["features"]
        for run, document in zip((reference, other), documents, strict=True)
    ]
    common = features[0].index.intersection(features[1].index)
    # Spark ML vectors come back from Parquet as structs; their dense values are a list.
    a, b = (np.stack([np.asarray(v["values"]) for v in column.loc[common]]) for column in features)
    cosine = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    agreeing = int((joined["reference"] == joined["other"]).sum())
    values = {
        "accuracy_diff_points": round(
            abs(classifiers[0]["accuracy"] - classifiers[1]["accuracy"]) * 100, 3
        ),
        "macro_f1_diff_points": round(
            abs(classifiers[0]["macro_f1"] - classifiers[1]["macro_f1"]) * 100, 3
        ),
        "pca_k_diff": abs(ks[0] - ks[1]),
        "test_predictions_agreeing": round(agreeing / len(joined), 5) if len(joined) else None,
    }
    checks = {
        name: {
            "value": values[name],
            "limit": f"{sign} {limit}",
            "met": values[name] is not None
            and (values[name] <= limit if sign == "<=" else values[name] >= limit),
        }
        for name, (sign, limit) in LIMITS.items()
    }
    precision_used = [document.get("precision", {}).get("images") for document in documents]
    return {
        "reference": {
            "accuracy": classifiers[0]["accuracy"],
            "macro_f1": classifiers[0]["macro_f1"],
            "pca_k": ks[0],
        },
        "other": {
            "accuracy": classifiers[1]["accuracy"],
            "macro_f1": classifiers[1]["macro_f1"],
            "pca_k": ks[1],
        },
        "precision_used": dict(zip(("reference", "other"), precision_used, strict=True)),
        "test_images": len(joined),
        "test_predictions_differing": len(joined) - agreeing,
        "differing_reference_leads": sorted(
            round(float(value), 4) for value in lead[joined["reference"] != joined["other"]]
        ),
        "reference_lead_median": float(lead.median()) if len(lead) else None,
        "feature_cosine_min": float(cosine.min()),
        "feature_cosine_mean": float(cosine.mean()),
        "images_compared": len(common),
        "checks": checks,
        "met": verdict(checks, precision_used[1]),
    }
