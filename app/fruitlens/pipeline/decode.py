"""Image bytes -> RGB pixels, or a named reason why not. Plain Python, no Spark.

Only pixels leave this module: EXIF, XMP, ICC profiles and comments are never read into the
outputs, which is what keeps GPS positions and device serials out of every derived file.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

# Rejection reasons, as they appear in rejected/ and run.json.
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
CORRUPT_IMAGE = "corrupt_image"
TOO_MANY_PIXELS = "too_many_pixels"
NO_CLASS_FOLDER = "no_class_folder"
TOO_DEEP = "too_deep"
FILE_TOO_LARGE = "file_too_large"
UNSUPPORTED_FORMAT = "unsupported_format"

# The photo formats decoded; Pillow knows dozens more (EPS would even run Ghostscript), each a
# parser that hostile bytes could reach, so the others are recognised by their magic bytes only
# and rejected.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
# "<_io.BytesIO object at 0x7f...>": an address differs between identical runs.
_ADDRESS = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")

# A truncated JPEG must be rejected, not padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray | None
    reason: str | None
    detail: str = ""


def rejected(reason: str, detail: str = "") -> Decoded:
    return Decoded(None, reason, detail)


def image_size(content: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone (no pixel decoding), or None if unreadable."""
    try:
        with Image.open(io.BytesIO(content), formats=FORMATS) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def to_rgb(image: Image.Image) -> Image.Image:
    """Every mode to 8-bit RGB: grayscale, CMYK, palette, alpha (on white) and 16-bit."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        # Pillow's convert('L') clips 16-bit values instead of scaling them.
        wide = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(wide.max()), 1.0)
        image = Image.fromarray(np.clip(wide / peak * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        # Fruits-360 photos are on white: composite transparent areas on white, not black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def decode(content: bytes | None, size: int, max_pixels: int) -> Decoded:
    """Decode, convert to RGB and resize to size x size, or say why the file can't be used."""
    if not content:
        return rejected(EMPTY_FILE, "file has 0 bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content), formats=FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return rejected(
                        TOO_MANY_PIXELS, f"{width}x{height} exceeds max_pixels={max_pixels}"
                    )
                image.draft("RGB", (size, size))  # JPEG: decode at reduced scale when possible
                rgb = to_rgb(image)
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
                return Decoded(np.asarray(rgb, dtype=np.uint8), None)
    except UnidentifiedImageError:
        known = other_format(content)
        if known:
            return rejected(UNSUPPORTED_FORMAT, f"{known} is not one of {', '.join(FORMATS)}")
        return rejected(NOT_AN_IMAGE, f"no {', '.join(FORMATS)} signature")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return rejected(TOO_MANY_PIXELS, _short(exc))
    except (OSError, ValueError, SyntaxError) as exc:
        return rejected(CORRUPT_IMAGE, _short(exc))


def other_format(content: bytes) -> str | None:
    """The name of a format Pillow knows but fruitlens does not decode, from its magic bytes
    alone (each plugin's `accept` test; nothing is parsed)."""
    Image.init()
    prefix = content[:64]
    for name in Image.ID:
        accept = Image.OPEN[name][1]
        if name not in FORMATS and accept is not None and accept(prefix):
            return name
    return None


def _short(exc: BaseException) -> str:
    return _ADDRESS.sub("<bytes>", f"{type(exc).__name__}: {exc}")[:300]
