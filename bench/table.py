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

    rows = [
        ("fruitlens end to end (1x, local[2])", fmt(results.get("fruitlens_images_per_s")), "", ""),
        (
            "fruitlens featurize stage (1x)",
            fmt(results.get("fruitlens_featurize_images_per_s")),
            "",
            "",
        ),
        ("bare Keras loop", fmt(results.get("keras_images_per_s")), "", ""),
        ("naive Spark (224 px, model per batch)", fmt(results.get("naive_images_per_s")), "", ""),
        ("roofline", fmt(results.get("roofline_images_per_s")), "", ""),
        (
            "fruitlens ÷ Keras",
            fmt(ratios.get("fruitlens_vs_keras")),
            "≥ 0.95",
            verdict("fruitlens_vs_keras"),
        ),
        (
            "fruitlens ÷ naive",
            fmt(ratios.get("fruitlens_vs_naive")),
            "≥ 5",
            verdict("fruitlens_vs_naive"),
        ),
        (
            "fruitlens ÷ roofline",
            fmt(ratios.get("fruitlens_vs_roofline")),
            "≥ 0.95",
            verdict("fruitlens_vs_roofline"),
        ),
        (
            "local[2] ÷ local[1] (featurize)",
            fmt(results.get("speedup_local2_vs_local1")),
            "≥ 1.8",
            verdict("speedup_local2_vs_local1"),
        ),
        (
            "peak RSS 1x / 4x / 8x (MB)",
            " / ".join(fmt(rss.get(key), 0) for key in ("1x", "4x", "8x")),
            "",
            "",
        ),
        (
            "peak RSS growth 1x → 8x",
            fmt(results.get("peak_rss_growth_8x"), 3),
            "≤ 0.15",
            verdict("peak_rss_growth_8x"),
        ),
        (
            "--incremental re-run ÷ first run",
            fmt(results.get("incremental_rerun_fraction"), 3),
            "≤ 0.10",
            verdict("incremental_rerun_fraction"),
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
