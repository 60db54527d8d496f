"""The bf16 quality verdict of the benchmark (bench/quality.py), apart from the runs it compares."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import quality  # bench/ holds scripts, not a package: found through sys.path

MET = {"met": True}
MISSED = {"met": False}


def test_a_bf16_run_that_meets_every_check_passes() -> None:
    assert quality.verdict({"a": MET, "b": MET}, {"bf16": 600}) is True


def test_one_missed_check_fails_the_bf16_run() -> None:
    assert quality.verdict({"a": MET, "b": MISSED}, {"bf16": 590, "fp32": 10}) is False


def test_a_run_that_fell_back_to_fp32_gets_no_verdict() -> None:
    # A CPU without bf16: both runs are float32, so matching checks prove nothing about bf16.
    assert quality.verdict({"a": MET}, {"fp32": 600}) is None
    assert quality.verdict({"a": MET}, None) is None
