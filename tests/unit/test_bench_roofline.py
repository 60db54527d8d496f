"""The roofline arithmetic of the benchmark: VGG16's multiply-adds per image (no timing here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import roofline  # bench/ holds scripts, not a package: found through sys.path


def test_vgg16_macs_at_224_match_the_published_15_3_g() -> None:
    assert roofline.vgg16_macs(224) == pytest.approx(15.35e9, rel=0.005)


def test_vgg16_macs_at_100_are_about_3_g() -> None:
    # 3.1 G if scaled by pixel count; pooling floors 25 -> 12 -> 6, hence a little less.
    assert roofline.vgg16_macs(100) == 2_964_630_528


def test_layers_follow_the_pooling_chain() -> None:
    layers = roofline.vgg16_conv_layers(100)
    assert len(layers) == 13
    assert [layer.side for layer in layers[::3]] == [100, 50, 25, 12, 6]
    assert (layers[0].in_channels, layers[-1].out_channels) == (3, 512)


def test_roofline_is_flops_over_two_macs() -> None:
    flops = 2.0 * roofline.vgg16_macs(100) * 40
    assert roofline.roofline_images_per_s(100, flops) == pytest.approx(40.0)
