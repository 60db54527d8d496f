"""report.html without Spark: the renderer on run.json-shaped documents, the verbosity and
progress settings, and `fruitlens report` on stored runs (local, and on S3 over real HTTP)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from fruitlens import config, progress
from fruitlens.outputs import report_html
from support.cli import invoke
from support.s3 import REGION

INJECTED = '<img src=x onerror="alert(1)">'
CLASSES = ["Apple Braeburn", "Banana", f"Kiwi {INJECTED}"]


def run_document(accuracy: float = 0.75, weights: str = "seeded:0") -> dict:
    return {
        "command": "run",
        "started_at": "2026-11-30T10:00:00+00:00",
        "finished_at": "2026-11-30T10:01:00+00:00",
        "output": "/tmp/run",
        "images": {
            "listed": 14,
            "processed": 12,
            "rejected": 2,
            "rejected_by_reason": {"corrupt_image": 1, "not_an_image": 1},
        },
        "model": {
            "name": "VGG16",
            "image_size": 100,
            "weights": weights,
            "weights_sha256": "ab" * 32,
            "imagenet_features": weights == "imagenet",
        },
        "pca": {
            "k": 3,
            "explained_variance": 0.96,
            "explained_variance_per_component": [0.6, 0.3, 0.06],
            "target_variance": 0.95,
        },
        "classifier": {
            "trained": True,
            "name": "logreg",
            "accuracy": accuracy,
            "macro_f1": 0.7,
            "top3_accuracy": 1.0,
            "test_images": 4,
        },
        "throughput_images_per_s": 12.5,
        "timings_s": {"featurize": 1.2, "pca": 0.5},
        "audit": {"region": REGION, "sse": "s3", "os_user": "tester"},
        "config": {"weights": weights, "region": REGION, "sse": None},
        "versions": {"fruitlens": "0.1.0"},
    }


def evaluation(recall_banana: float = 0.5) -> dict:
    return {
        "classes": CLASSES,
        "confusion_matrix": [[2, 0, 0], [1, 1, 0], [0, 0, 2]],
        "per_class": {
            "Apple Braeburn": {"precision": 0.667, "recall": 1.0, "f1": 0.8, "support": 2},
            "Banana": {"precision": 1.0, "recall": recall_banana, "f1": 0.667, "support": 2},
            CLASSES[2]: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2},
        },
    }


def page(**data: object) -> str:
    defaults = {
        "document": run_document(),
        "evaluation": evaluation(),
        "rejected": [{"path": f"file:/in/{INJECTED}.jpg", "reason": "not_an_image", "detail": ""}],
    }
    return report_html.render(report_html.ReportData(**{**defaults, **data}))


def test_untrusted_names_are_escaped_and_no_script_but_the_pages_own_can_run():
    html = page()
    assert INJECTED not in html  # class and file names come out as text, never as markup
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    policy = re.search(r'Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in policy
    assert report_html._script_hash(report_html.SORT_SCRIPT) in policy
    assert html.count("<script>") == 1


def test_the_page_needs_no_network():
    html = page(plots={"plots/pca_scatter.png": b"\x89PNG fake"})
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "data:image/png;base64," in html


def test_summary_figures_carry_run_json_values():
    html = page()
    for key, value in [("images.listed", 14), ("pca.k", 3), ("classifier.accuracy", 0.75)]:
        assert f'data-key="{key}" data-value="{value}"' in html


def test_seeded_weights_are_announced_and_imagenet_ones_are_not_flagged():
    assert "NOT ImageNet features" in page()
    imagenet = page(document=run_document(weights="imagenet"))
    assert "NOT ImageNet" not in imagenet and "ImageNet</strong> weights" in imagenet


def test_most_confused_pairs_are_named_from_the_matrix():
    pairs = report_html.most_confused(evaluation())
    assert pairs == [{"true": "Banana", "predicted": "Apple Braeburn", "count": 1, "share": 0.5}]


def test_a_run_without_classifier_or_rejections_still_renders():
    document = run_document()
    document["classifier"] = {"trained": False, "why": "no Training/Test folders"}
    document["images"].update(rejected=0, rejected_by_reason={})
    html = page(document=document, evaluation=None, rejected=[])
    assert "not trained: no Training/Test folders" in html
    assert 'id="per-class"' not in html and "Every listed file was featurized" in html


def test_comparison_shows_deltas_per_class_and_overall():
    first = report_html.ReportData(run_document(0.75), evaluation(0.5), location="runs/a")
    second = report_html.ReportData(run_document(0.9), evaluation(1.0), location="runs/b")
    rows = {row["name"]: row for row in report_html.class_deltas(first, second)}
    assert rows["Banana"]["recall"] == (0.5, 1.0, 0.5)
    html = report_html.render_comparison(first, second)
    assert "+0.1500" in html  # accuracy 0.75 -> 0.90
    assert INJECTED not in html


def test_thumbnails_are_redrawn_without_metadata():
    from support.images import gps_exif_jpeg

    png = report_html.thumbnail_png(gps_exif_jpeg())
    assert png.startswith(b"\x89PNG") and b"Jeanne Grower" not in png and b"SERIAL" not in png
    assert report_html.thumbnail_png(b"not an image") is None


def test_verbosity_counts_and_is_a_setting_like_any_other():
    parser = __import__("fruitlens.cli", fromlist=["build_parser"]).build_parser()
    args = vars(parser.parse_args(["run", "-v", "-v", "--input", "x", "--output", "y"]))
    assert config.build_config("run", args, {}).verbose == 2
    assert config.build_config("run", {"config": None}, {"FRUITLENS_VERBOSE": "1"}).verbose == 1


def test_report_runs_are_positional_and_bounded_expiry_is_refused():
    parser = __import__("fruitlens.cli", fromlist=["build_parser"]).build_parser()
    args = vars(parser.parse_args(["report", "a", "b"]))
    assert config.build_config("report", args, {}).runs == ["a", "b"]
    with pytest.raises(config.ConfigError, match="report-url-expiry"):
        config.build_config("report", {"config": None, "report_url_expiry": 86400}, {})


def test_progress_off_a_terminal_prints_whole_lines_then_the_final_count():
    stream = io.StringIO()
    polled = threading.Event()

    def done() -> int:
        polled.set()
        return 5

    with progress.Progress("featurize", 20, done, interval_s=0.01, stream=stream) as line:
        polled.wait()
        line.finish(20)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[-1].startswith("featurize: 20/20 images (100%)") and "done in" in lines[-1]
    assert all(text.startswith("featurize: ") for text in lines)


def test_progress_text_has_rate_and_eta():
    text = progress.render("featurize", progress.Snapshot(500, 2000, 10.0, 4, 16))
    assert text == "featurize: 500/2,000 images (25%), 50.0 images/s, ETA 30 s, 4/16 tasks"


# --- `fruitlens report` on stored runs ------------------------------------------------------------
def stored_run(folder: Path) -> Path:
    """A committed run's files as `fruitlens run` leaves them (run.json names its outputs)."""
    folder.mkdir(parents=True)
    (folder / "rejected").mkdir()
    pd.DataFrame(
        {
            "image_id": ["0" * 64],
            "path": [f"file:/in/{INJECTED}.jpg"],
            "reason": ["not_an_image"],
            "detail": [None],
        }
    ).to_parquet(folder / "rejected" / "part-00000.snappy.parquet")
    (folder / "evaluation.json").write_text(json.dumps(evaluation()))
    document = run_document()
    document["outputs"] = {
        "rejected": str(folder / "rejected"),
        "evaluation.json": str(folder / "evaluation.json"),
    }
    document["files_sha256"] = {}
    (folder / "run.json").write_text(json.dumps(document))
    return folder


def test_report_regenerates_the_page_through_the_commit(tmp_path: Path):
    run = stored_run(tmp_path / "run")
    result = invoke("report", str(run))
    assert result.code == 0, result.stderr
    html = (run / "report.html").read_text()
    assert "not_an_image" in html and "&lt;img src=x" in html
    document = json.loads((run / "run.json").read_text())
    digest = hashlib.sha256((run / "report.html").read_bytes()).hexdigest()
    assert document["files_sha256"]["report.html"] == digest
    assert document["outputs"]["report.html"] == "report.html"  # relative to the run
    assert (run / "report.html").resolve().as_uri() in result.stdout


def test_report_wrong_usage_is_one_line_and_exit_2(tmp_path: Path):
    missing = invoke("report", str(tmp_path))
    assert missing.code == 2 and "holds no run.json" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    run = stored_run(tmp_path / "a")
    two = invoke("report", str(run), str(run))
    assert two.code == 2 and "--output" in two.stderr


def test_two_runs_compare_into_the_output_folder(tmp_path: Path):
    first, second = stored_run(tmp_path / "a"), stored_run(tmp_path / "b")
    result = invoke("report", str(first), str(second), "--output", str(tmp_path / "cmp"))
    assert result.code == 0, result.stderr
    html = (tmp_path / "cmp" / "comparison.html").read_text()
    assert str(first) in html and str(second) in html and 'id="per-class"' in html


@pytest.mark.s3
def test_report_on_s3_prints_a_short_presigned_url_and_keeps_objects_private(
    s3_server, tmp_path: Path
):
    bucket = s3_server.make_bucket("report-runs")
    local = stored_run(tmp_path / "run")
    uri = f"s3a://{bucket}/runs/r1"
    document = json.loads((local / "run.json").read_text())
    document["outputs"] = {
        "rejected": f"{uri}/rejected",
        "evaluation.json": f"{uri}/evaluation.json",
    }
    (local / "run.json").write_text(json.dumps(document))
    s3_server.upload_tree(local, bucket, "runs/r1")
    result = invoke(
        "report", uri, "--s3-endpoint", s3_server.endpoint, "--report-url-expiry", "300"
    )
    assert result.code == 0, result.stderr
    url = re.search(r"^open\s+(\S+)", result.stdout, re.M).group(1)
    assert "X-Amz-Expires=300" in url and "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.headers["Content-Type"].startswith("text/html")
        html = answer.read().decode()
    assert "not_an_image" in html and 'id="per-class"' in html
    client = s3_server.client()
    grants = client.get_object_acl(Bucket=bucket, Key="runs/r1/report.html")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]  # the owner only
    head = client.head_object(Bucket=bucket, Key="runs/r1/report.html")
    assert head["ServerSideEncryption"] == "AES256"
    committed = json.loads(client.get_object(Bucket=bucket, Key="runs/r1/run.json")["Body"].read())
    assert committed["outputs"]["report.html"] == "report.html"  # relative to the run


def test_the_summary_ends_with_where_the_report_is():
    from fruitlens.outputs import report

    # run.json names it relative to the run; the summary says where it is.
    document = {
        **run_document(),
        "output": "s3a://fruits/runs/r1",
        "outputs": {"report.html": "report.html"},
    }
    lines = report.summary(document).splitlines()
    assert lines[-1] == "  report     s3a://fruits/runs/r1/report.html"
