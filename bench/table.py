"""Render a bench results file (default bench/results/latest.json) as a Markdown table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    env = results.get("environment", {})
    targets = results.get("targets", {})
    ratios = results.get("ratios", {})
    rss = results.get("peak_rss_mb", {})
    settings = results.get("settings", {})

    def verdict(name: str) -> str:
        met = targets.get(name, {}).get("met")
        return "—" if met is None else ("met" if met else "**missed**")

    def measured(label: str, value: Any, digits: int = 2) -> tuple[str, str, str, str]:
        return (label, fmt(value, digits), "", "")

    def judged(label: str, name: str, value: Any, digits: int = 2) -> tuple[str, str, str, str]:
        sign, bound = targets.get(name, {}).get("target", "— ").split(" ", 1)
        rule = {">=": "≥", "<=": "≤"}.get(sign, sign) + " " + bound
        return (label, fmt(value, digits), rule.strip(), verdict(name))

    largest = max(settings.get("scales") or [1])
    rows = [
        measured("fruitlens end to end (1x, local[2])", results.get("fruitlens_images_per_s")),
        measured("fruitlens featurize stage (1x)", results.get("fruitlens_featurize_images_per_s")),
        measured("bare Keras loop", results.get("keras_images_per_s")),
        measured("naive Spark (224 px, model per batch)", results.get("naive_images_per_s")),
        measured("roofline", results.get("roofline_images_per_s")),
        judged("fruitlens ÷ Keras", "fruitlens_vs_keras", ratios.get("fruitlens_vs_keras")),
        judged(
            f"fruitlens ÷ Keras at {largest}x, both fp32 (fixed costs amortised)",
            "fruitlens_fp32_vs_keras_fp32_largest_scale",
            ratios.get("fruitlens_fp32_vs_keras_fp32_largest_scale"),
        ),
        judged("fruitlens ÷ naive", "fruitlens_vs_naive", ratios.get("fruitlens_vs_naive")),
        judged(
            "fruitlens ÷ roofline", "fruitlens_vs_roofline", ratios.get("fruitlens_vs_roofline")
        ),
        judged(
            "local[2] ÷ local[1] (featurize)",
            "speedup_local2_vs_local1",
            results.get("speedup_local2_vs_local1"),
        ),
        measured(
            "local[2] ÷ local[1] (warm profile passes)",
            results.get("speedup_local2_vs_local1_warm"),
        ),
        measured(
            "peak RSS 1x / 4x / 8x (MB)",
            " / ".join(fmt(rss.get(key), 0) for key in ("1x", "4x", "8x")),
        ),
        judged(
            "peak RSS growth 1x → 8x", "peak_rss_growth_8x", results.get("peak_rss_growth_8x"), 3
        ),
        judged(
            "--incremental re-run ÷ first run (1x)",
            "incremental_rerun_fraction",
            results.get("incremental_rerun_fraction"),
            3,
        ),
        measured(
            f"--incremental re-run ÷ first run ({largest}x)",
            results.get("incremental_rerun_fraction_largest_scale"),
            3,
        ),
    ]
    lines = [
        "| measure | images/s or value | target | |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        f"{env.get('cpu_model')}, {env.get('cores')} cores, {env.get('memory_mb')} MB; "
        f"TensorFlow {env.get('versions', {}).get('tensorflow-cpu')}, "
        f"pyspark {env.get('versions', {}).get('pyspark')}, Python {env.get('python')}; "
        f"1x = {settings.get('base_images')} images; suite took {fmt(results.get('elapsed_s'), 0)}"
        f" s; load average at start {results.get('load_average_start')}, at end "
        f"{results.get('load_average_end')} (from {results.get('started_at')}).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="?", type=Path, default=BENCH / "results" / "latest.json")
    args = parser.parse_args()
    print(table(json.loads(args.results.read_text())))


if __name__ == "__main__":
    main()
