"""report.html: one self-contained page a person opens to see what a run did.

`render` and `render_comparison` are pure: run.json's document plus the stored data they are
given (evaluation.json, the plots' PNGs, the rejected files, optional thumbnails) in, HTML out.
Everything the page shows is inside it (plots as inline SVG or base64 PNG, CSS, a few lines of
JavaScript to sort tables) and its Content-Security-Policy forbids any network access, so it
reads the same offline, from a local folder or from S3.

File and class names are untrusted input (they come from whoever filled the bucket): the
template autoescapes every value, and the one script the page runs is allowed by its hash, so
markup that slipped into a name could not run either.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2

from fruitlens import redact
from fruitlens.outputs.names import PCA_SCATTER_PNG

CONTENT_TYPE = "text/html; charset=utf-8"
# How many rows of the rejected files and confusions the page lists (the counts are complete).
MAX_REJECTED_ROWS = 1000
MOST_CONFUSED = 15
THUMBNAIL_PX = 96
MAX_THUMBNAILS = 48

# Sorting a table by a click on its header; the page's CSP allows this script by its hash.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var down = th.getAttribute("aria-sort") !== "descending";
    th.closest("tr").querySelectorAll("th").forEach(function (other) {
      other.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", down ? "descending" : "ascending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
      var nx = parseFloat(x), ny = parseFloat(y);
      var order = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
      return down ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


@dataclass
class Thumbnail:
    path: str
    label: str
    predicted: str
    png: bytes


@dataclass
class ReportData:
    """What one page shows; everything but `document` may be missing (a run without a
    classifier has no evaluation, --no-plots leaves no PNG)."""

    document: dict[str, Any]
    evaluation: dict[str, Any] | None = None
    plots: dict[str, bytes] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    thumbnails: list[Thumbnail] = field(default_factory=list)
    location: str | None = None  # where the run lives (its output folder)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("fruitlens", "templates"),
        autoescape=True,  # every {{ value }} is HTML-escaped: names are untrusted input
        undefined=jinja2.ChainableUndefined,  # run.json sections are optional
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def lookup(document: Mapping[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


# --- the figures the summary shows: (label, run.json key, format) ---------------------------------
SUMMARY = (
    ("images listed", "images.listed", "int"),
    ("processed", "images.processed", "int"),
    ("rejected", "images.rejected", "int"),
    ("PCA k", "pca.k", "int"),
    ("explained variance", "pca.explained_variance", "ratio"),
    ("accuracy (Test)", "classifier.accuracy", "ratio"),
    ("macro-F1", "classifier.macro_f1", "ratio"),
    ("top-3 accuracy", "classifier.top3_accuracy", "ratio"),
    ("Test images", "classifier.test_images", "int"),
    ("throughput", "throughput_images_per_s", "rate"),
)


def formatted(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "ratio":
        return f"{float(value):.4f}"
    if kind == "rate":
        return f"{float(value):.1f} images/s"
    if kind == "seconds":
        return f"{float(value):.1f} s"
    return str(value)


def summary_figures(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The summary as (label, key, raw value, shown text): the page carries the raw value in a
    data attribute, so a reader (or a test) can check it against run.json."""
    figures = []
    for label, key, kind in SUMMARY:
        value = lookup(document, key)
        if value is not None:
            figures.append(
                {"label": label, "key": key, "value": value, "text": formatted(value, kind)}
            )
    return figures


def weights_facts(document: Mapping[str, Any]) -> dict[str, Any]:
    model = document.get("model") or {}
    return {
        "name": model.get("name"),
        "weights": model.get("weights"),
        "sha256": model.get("weights_sha256"),
        "image_size": model.get("image_size"),
        "imagenet": bool(model.get("imagenet_features")),
        # Features are computed in float32 unless run.json names another precision.
        "precision": model.get("precision") or document.get("precision") or "float32",
    }


# --- classification -------------------------------------------------------------------------------
def per_class_rows(evaluation: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not evaluation:
        return []
    return [{"name": name, **scores} for name, scores in evaluation["per_class"].items()]


def most_confused(evaluation: Mapping[str, Any] | None, limit: int = MOST_CONFUSED) -> list[dict]:
    """The off-diagonal cells with the most images, named: true class -> predicted class."""
    if not evaluation:
        return []
    classes = evaluation["classes"]
    matrix = evaluation["confusion_matrix"]
    pairs = []
    for row_index, row in enumerate(matrix):
        true = classes[row_index] if row_index < len(classes) else "(class not in the model)"
        total = sum(row)
        for column, count in enumerate(row):
            if count and column != row_index:
                share = count / total if total else 0.0
                pairs.append(
                    {"true": true, "predicted": classes[column], "count": count, "share": share}
                )
    pairs.sort(key=lambda pair: (-pair["count"], pair["true"], pair["predicted"]))
    return pairs[:limit]


def viridis(fraction: float) -> str:
    """The colour of a share in [0, 1], as the PNG heat map draws it."""
    from matplotlib import colormaps, colors

    return colors.to_hex(colormaps["viridis"](min(max(fraction, 0.0), 1.0)))


def confusion_cells(evaluation: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The row-normalised confusion matrix as SVG cells (zero cells are the background)."""
    if not evaluation:
        return None
    classes = list(evaluation["classes"])
    matrix = evaluation["confusion_matrix"]
    size = len(classes)
    cell = max(4, min(28, 560 // max(size, 1)))
    cells = []
    for row_index, row in enumerate(matrix[:size]):
        total = sum(row)
        for column, count in enumerate(row):
            if count:
                share = count / total
                cells.append(
                    {
                        "x": column * cell,
                        "y": row_index * cell,
                        "fill": viridis(share),
                        "title": f"{classes[row_index]} → {classes[column]}: {count} ({share:.0%})",
                    }
                )
    return {
        "classes": classes,
        "cell": cell,
        "side": cell * size,
        "cells": cells,
        "labels": size <= 40,
    }


# --- PCA ------------------------------------------------------------------------------------------
def variance_curve(
    pca: Mapping[str, Any] | None, width: int = 560, height: int = 220
) -> dict | None:
    """Per-component bars and the cumulative curve of explained variance, as SVG geometry."""
    ratios = list((pca or {}).get("explained_variance_per_component") or [])
    if not ratios:
        return None
    step = width / len(ratios)
    cumulative, total = [], 0.0
    for ratio in ratios:
        total += ratio
        cumulative.append(total)
    points = " ".join(
        f"{(index + 0.5) * step:.1f},{height * (1 - value):.1f}"
        for index, value in enumerate(cumulative)
    )
    bars = [
        {
            "x": index * step,
            "width": max(step - 1, 0.5),
            "y": height * (1 - ratio),
            "height": height * ratio,
        }
        for index, ratio in enumerate(ratios)
    ]
    target = pca.get("target_variance")
    return {
        "width": width,
        "height": height,
        "points": points,
        "bars": bars,
        "target_y": None if target is None else height * (1 - target),
        "target": target,
        "k": len(ratios),
        "total": total,
    }


# --- settings and audit ---------------------------------------------------------------------------
def settings_rows(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run's settings as shown; values pass the log redaction too (defence in depth: the
    Config holds no secret by construction)."""
    config = document.get("config") or {}
    return [
        (name, redact.redact(json.dumps(value, default=str)))
        for name, value in sorted(config.items())
    ]


def audit_rows(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    audit = document.get("audit") or {}
    return [(name, redact.redact(str(value))) for name, value in sorted(audit.items())]


# --- the pages ------------------------------------------------------------------------------------
def _context(data: ReportData) -> dict[str, Any]:
    document = data.document
    images = document.get("images") or {}
    rejected_total = int(images.get("rejected") or 0)
    return {
        "doc": document,
        "location": data.location or document.get("output"),
        "figures": summary_figures(document),
        "weights": weights_facts(document),
        "timings": sorted((document.get("timings_s") or {}).items()),
        "total_time": sum((document.get("timings_s") or {}).values()),
        "classifier": document.get("classifier") or {},
        "per_class": per_class_rows(data.evaluation),
        "confused": most_confused(data.evaluation),
        "confusion": confusion_cells(data.evaluation),
        "variance": variance_curve(document.get("pca")),
        "scatter": data_uri(data.plots[PCA_SCATTER_PNG]) if PCA_SCATTER_PNG in data.plots else None,
        "rejected": data.rejected[:MAX_REJECTED_ROWS],
        "rejected_total": rejected_total,
        "rejected_by_reason": sorted((images.get("rejected_by_reason") or {}).items()),
        "thumbnails": [
            {"path": t.path, "label": t.label, "predicted": t.predicted, "src": data_uri(t.png)}
            for t in data.thumbnails
        ],
        "settings": settings_rows(document),
        "audit": audit_rows(document),
        "versions": sorted((document.get("versions") or {}).items()),
    }


def _page(template: str, context: dict[str, Any]) -> str:
    return (
        _environment()
        .get_template(template)
        .render(script=SORT_SCRIPT, script_hash=_script_hash(SORT_SCRIPT), **context)
    )


def render(data: ReportData) -> str:
    return _page("report.html.j2", _context(data))


COMPARED = (
    ("accuracy (Test)", "classifier.accuracy", "ratio"),
    ("macro-F1", "classifier.macro_f1", "ratio"),
    ("top-3 accuracy", "classifier.top3_accuracy", "ratio"),
    ("PCA k", "pca.k", "int"),
    ("explained variance", "pca.explained_variance", "ratio"),
    ("throughput", "throughput_images_per_s", "rate"),
    ("images processed", "images.processed", "int"),
    ("images rejected", "images.rejected", "int"),
    ("weights", "model.weights", "text"),
    ("image size (px)", "model.image_size", "int"),
    ("classifier", "classifier.name", "text"),
    ("featurize time", "timings_s.featurize", "seconds"),
)


def _delta(a: Any, b: Any, kind: str) -> str:
    if kind == "text" or a is None or b is None:
        return "" if a == b else "changed"
    change = float(b) - float(a)
    if kind == "int":
        return f"{change:+,.0f}"
    if kind == "ratio":
        return f"{change:+.4f}"
    return f"{change:+.1f}"


def class_deltas(first: ReportData, second: ReportData) -> list[dict[str, Any]]:
    """Per class: F1 and recall in each run and their change (classes of either run)."""
    a = {row["name"]: row for row in per_class_rows(first.evaluation)}
    b = {row["name"]: row for row in per_class_rows(second.evaluation)}
    rows = []
    for name in sorted(set(a) | set(b)):
        left, right = a.get(name, {}), b.get(name, {})
        row = {"name": name}
        for metric in ("f1", "recall"):
            x, y = left.get(metric), right.get(metric)
            row[metric] = (x, y, None if x is None or y is None else y - x)
        row["support"] = (left.get("support"), right.get("support"))
        rows.append(row)
    return rows


def render_comparison(first: ReportData, second: ReportData) -> str:
    figures = []
    for label, key, kind in COMPARED:
        a, b = lookup(first.document, key), lookup(second.document, key)
        figures.append(
            {
                "label": label,
                "key": key,
                "a": formatted(a, kind),
                "b": formatted(b, kind),
                "delta": _delta(a, b, kind),
            }
        )
    return _page(
        "compare.html.j2",
        {
            "first": _context(first),
            "second": _context(second),
            "figures": figures,
            "classes": class_deltas(first, second),
        },
    )


# --- thumbnails (opt-in) --------------------------------------------------------------------------
def thumbnail_png(content: bytes, side: int = THUMBNAIL_PX) -> bytes | None:
    """A small PNG re-drawn from the pixels: no EXIF, GPS or other metadata survives."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            image.thumbnail((side, side))
            pixels = Image.new("RGB", image.size, "white")
            pixels.paste(image.convert("RGBA"), mask=image.convert("RGBA").split()[3])
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    buffer = io.BytesIO()
    pixels.save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnails(
    misclassified: Sequence[Mapping[str, Any]], read: Any, limit: int = MAX_THUMBNAILS
) -> list[Thumbnail]:
    """Thumbnails of misclassified Test images (rows: path, label, predicted_label), read with
    `read(path) -> bytes`; unreadable sources are left out."""
    found = []
    for row in misclassified[:limit]:
        try:
            png = thumbnail_png(read(row["path"]))
        except Exception:  # a source moved or erased since the run: no thumbnail, no failure
            png = None
        if png:
            found.append(Thumbnail(row["path"], row["label"], row["predicted_label"], png))
    return found
