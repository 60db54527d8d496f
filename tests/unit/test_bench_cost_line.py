"""The featurize stage's cost as a line (bench/run_bench.py): fixed core-seconds plus core-ms per
image from two runs' CPU split, and from how many images the stage reaches 0.95x the loop."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import run_bench  # bench/ holds scripts, not a package: found through sys.path

# The full run of 2026-12-06 17:29 on a 2-vCPU Zen 4 (bench/README.md, Results), recorded before
# the splits carried their cores: all its runs were on local[2].
RUN_17_29 = run_bench.BENCH / "results" / "20261206T172903Z.json"


def split(images: int, fixed: float, per_image_ms: float, cores: int = 2) -> dict[str, Any]:
    """A featurize_cpu whose stage costs exactly `fixed` + `per_image_ms` per image, a tenth of
    it unused, the rest the workers'."""
    core_s = fixed + images * per_image_ms / 1000
    return {
        "window_s": core_s / cores,
        "cores": cores,
        "cpu_s": {"python_workers": 0.9 * core_s, "jvm": 0.0, "driver": 0.0},
        "unused_core_s": 0.1 * core_s,
    }


def run(images: int, fixed: float, per_image_ms: float, precision: str, **extra: Any) -> dict:
    return {
        "featurize_cpu": split(images, fixed, per_image_ms, extra.pop("cores", 2)),
        "precision": {"images": {precision: images}},
        **extra,
    }


def test_two_runs_on_an_exact_line_give_back_its_fixed_and_per_image_cost() -> None:
    fit = {
        "8x": (4800, split(4800, 8.0, 50.0)),
        "1x": (600, split(600, 8.0, 50.0)),
        "4x": (2400, split(2400, 8.0, 50.0)),
    }
    # The loop: 2 cores / 39.2157 images/s = 51 core-ms per image.
    line = run_bench.stage_cost_line(
        fit, 2 / 0.051, 0.95, checks={"whole": (16_000, split(16_000, 8.0, 50.0))}
    )
    assert line is not None
    assert line["images"] == [600, 4800]
    assert line["fixed_core_s"] == pytest.approx(8.0)
    assert line["core_ms_per_image"] == pytest.approx(50.0)
    assert line["fixed_core_s_by_kind"]["python_workers"] == pytest.approx(7.2)
    assert line["core_ms_per_image_by_kind"]["unused"] == pytest.approx(5.0)
    assert line["loop_core_ms_per_image"] == pytest.approx(51.0)
    assert line["limit_vs_loop"] == pytest.approx(1.02)
    # N * 51 / (N * 50 + 8 000) = 0.95  <=>  N = 0.95 * 8 000 / (51 - 47.5)
    assert line["images_to_reach_target"] == 2171
    # The runs between the ends are checked, as are the others given.
    assert set(line["checks"]) == {"4x", "whole"}
    for check in line["checks"].values():
        assert check["predicted_window_s"] == pytest.approx(check["window_s"])


def test_a_stage_dearer_per_image_than_the_target_allows_never_reaches_it() -> None:
    fit = {"1x": (600, split(600, 8.0, 60.0)), "8x": (4800, split(4800, 8.0, 60.0))}
    line = run_bench.stage_cost_line(fit, 2 / 0.051, 0.95)
    assert line is not None
    assert line["images_to_reach_target"] is None
    assert line["limit_vs_loop"] == pytest.approx(0.85)


@pytest.mark.parametrize(
    ("fit", "loop"),
    [
        ({"1x": (600, split(600, 8.0, 50.0))}, 39.0),  # one run: no slope
        ({"a": (600, split(600, 8.0, 50.0)), "b": (600, split(600, 9.0, 50.0))}, 39.0),  # one size
        # No loop to compare with:
        ({"1x": (600, split(600, 8.0, 50.0)), "8x": (4800, split(4800, 8.0, 50.0))}, None),
    ],
)
def test_no_line_without_two_sizes_and_the_loop(fit: dict, loop: float | None) -> None:
    assert run_bench.stage_cost_line(fit, loop, 0.95) is None


def test_the_bench_fits_the_scale_runs_and_checks_the_whole_subset_runs() -> None:
    results = {
        "fruitlens_1x": run(600, 8.0, 52.0, "fp32"),
        "fruitlens_8x_fp32": run(4800, 8.0, 52.0, "fp32"),
        "fruitlens_8x": run(4800, 8.0, 26.0, "bf16"),
        "fruitlens_1x_bf16": run(600, 8.0, 26.0, "bf16"),
        # Not on the line: another master's cores, a re-run that featurized nothing new.
        "fruitlens_1x_local1": run(600, 4.0, 90.0, "fp32", cores=1),
        "fruitlens_1x_incremental": run(30, 8.0, 900.0, "fp32", manifest_incremental={"new": 30}),
        "quality-fp32_run": run(16_798, 8.0, 52.0, "fp32"),
        "keras": {"images_per_s": 39.0},
        "naive": None,
    }
    lines = run_bench.stage_cost_lines(results, 2, {"fp32": 39.0, "bf16": 77.0}, 0.95)
    assert set(lines) == {"fp32", "bf16"}
    assert lines["fp32"]["images"] == [600, 4800]
    assert lines["fp32"]["core_ms_per_image"] == pytest.approx(52.0)
    assert set(lines["fp32"]["checks"]) == {"quality-fp32_run"}
    assert lines["bf16"]["checks"] == {}


def test_the_17_29_run_line_predicts_its_whole_subset_stages() -> None:
    """The measured case bench/README.md reports: a line through the 1x and 8x runs predicts
    the 16 798-image stages within 1 %, and puts 0.95x the loop at ~5 200 images in fp32 and
    ~8 000 in bf16."""
    recorded = json.loads(RUN_17_29.read_text())
    results = {name: step["result"] for name, step in recorded["steps"].items()}
    for result in results.values():
        if result and result.get("featurize_cpu"):
            result["featurize_cpu"]["cores"] = 2
    loops = {"fp32": recorded["keras_images_per_s"], "bf16": recorded["keras_bf16_images_per_s"]}
    lines = run_bench.stage_cost_lines(results, 2, loops, 0.95)
    assert lines["fp32"]["images_to_reach_target"] == pytest.approx(5_200, rel=0.02)
    assert lines["bf16"]["images_to_reach_target"] == pytest.approx(8_000, rel=0.02)
    assert lines["fp32"]["fixed_core_s"] == pytest.approx(8.2, abs=0.1)
    for precision, check in (("fp32", "quality-fp32_run"), ("bf16", "quality-bf16_run")):
        whole = lines[precision]["checks"][check]
        assert whole["images"] == 16_798
        assert whole["predicted_window_s"] == pytest.approx(whole["window_s"], rel=0.01)
