"""Decoding every awkward input to RGB pixels, or to a named reason; no Spark needed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fruitlens.pipeline import decode
from support.images import bad_inputs, encode, rgb_jpeg

CASES = {path: case for path, case in bad_inputs().items() if "/" in path}


@pytest.mark.parametrize("path", sorted(CASES))
def test_each_awkward_file_gets_its_outcome(path):
    data, expected = CASES[path]
    result = decode.decode(data, 100, 25_000_000)
    assert result.reason == expected, result.detail
    if expected is None:
        assert result.pixels is not None
        assert result.pixels.shape == (100, 100, 3) and result.pixels.dtype == np.uint8
    else:
        assert result.pixels is None and result.detail


def test_transparent_png_is_composited_on_white():
    data = encode(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), "PNG")
    assert decode.decode(data, 32, 10**6).pixels.min() == 255


def test_sixteen_bit_values_are_scaled_not_clipped():
    data = encode(Image.new("I;16", (8, 8), 32768), "PNG")
    pixels = decode.decode(data, 32, 10**6).pixels
    assert 120 <= pixels.mean() <= 135  # half of 16-bit range -> half of 8-bit range


def test_bomb_is_rejected_from_its_header_before_decoding():
    data, _ = bad_inputs()["Odd Cases/bomb.png"]
    assert decode.image_size(data) is None or decode.image_size(data) == (20000, 20000)
    small_limit = decode.decode(rgb_jpeg(size=100), 100, max_pixels=50 * 50)
    assert small_limit.reason == decode.TOO_MANY_PIXELS and "100x100" in small_limit.detail


def test_resizing_keeps_native_size_untouched():
    pixels = decode.decode(rgb_jpeg((10, 20, 30), size=100), 100, 10**6).pixels
    assert pixels.shape == (100, 100, 3)
    assert abs(int(pixels[50, 50, 2]) - 30) <= 3
