"""Image bytes without their metadata blocks, pixels unchanged (what `fruitlens sanitize` writes).

JPEG and PNG are rewritten at the byte level: metadata segments/chunks are dropped and the
compressed image data is copied verbatim, so the decoded pixels are bit-identical (checked by
decoding both versions). Re-encoding a JPEG would change its pixels, so it is never done. Any
other format Pillow can read is decoded and re-encoded losslessly as PNG (the report says so, and
the file gets a .png name). Files that are not images are not copied and are listed as rejected.

Plain Python on bytes, one file at a time: memory holds one image, whatever the number of files.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

log = logging.getLogger(__name__)

JPEG_SOI = b"\xff\xd8"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# PNG chunks that carry pixels or change how they decode; everything else is dropped.
PNG_KEEP = frozenset(
    {
        b"IHDR",
        b"PLTE",
        b"IDAT",
        b"IEND",
        b"tRNS",
        b"gAMA",
        b"cHRM",
        b"sRGB",
        b"sBIT",
        b"bKGD",
        b"pHYs",
        b"acTL",
        b"fcTL",
        b"fdAT",
    }
)

# JPEG markers without a length field.
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


class NotAnImage(ValueError):
    pass


@dataclass
class Cleaned:
    data: bytes
    removed: list[str] = field(default_factory=list)
    fmt: str = ""
    converted_to: str | None = None
    note: str = ""


# --- naming what is removed ---------------------------------------------------------------------
def exif_tag_names(payload: bytes) -> list[str]:
    """`exif:<TagName>` for every tag of IFD0, the Exif IFD and the GPS IFD (GPSInfo)."""
    from PIL import ExifTags, Image

    exif = Image.Exif()
    try:
        exif.load(payload)
    except Exception:  # malformed EXIF is still EXIF: it is removed all the same
        return ["exif"]
    names = set()
    for tag in exif:
        names.add(ExifTags.TAGS.get(tag, f"0x{tag:04X}"))
    for pointer in (ExifTags.IFD.Exif, ExifTags.IFD.Interop):
        try:
            for tag in exif.get_ifd(pointer):
                names.add(ExifTags.TAGS.get(tag, f"0x{tag:04X}"))
        except Exception:
            continue
    if ExifTags.IFD.GPSInfo in exif:
        names.add("GPSInfo")
    names.discard("ExifOffset")
    names.discard("InteropOffset")
    return ["exif", *sorted(f"exif:{name}" for name in names)]


def _app_name(marker: int, payload: bytes) -> list[str]:
    if marker == 0xE1 and payload.startswith(b"Exif\x00"):
        return exif_tag_names(payload[6:])
    if marker == 0xE1 and payload.startswith(
        (b"http://ns.adobe.com/xap/1.0/", b"http://ns.adobe.com/xmp")
    ):
        return ["xmp"]
    if marker == 0xE2 and payload.startswith(b"ICC_PROFILE\x00"):
        return ["icc"]
    if marker == 0xE2 and payload.startswith(b"MPF\x00"):
        return ["mpf"]
    if marker == 0xED and payload.startswith(b"Photoshop 3.0\x00"):
        return ["iptc"]
    if marker == 0xE0 and payload.startswith(b"JFXX\x00"):
        return ["jfif_thumbnail"]
    return [f"app{marker - 0xE0}"]


# --- JPEG ----------------------------------------------------------------------------------------
def _keep_app(marker: int, payload: bytes) -> bool:
    if marker == 0xE0 and payload.startswith(b"JFIF\x00"):
        return True  # pixel aspect and density only; no personal data
    # Adobe APP14 tells the decoder whether CMYK/YCCK data is colour-transformed: it changes
    # pixels and carries only a version and flags, so it stays.
    return marker == 0xEE and payload.startswith(b"Adobe")


def strip_jpeg(data: bytes) -> Cleaned:
    """Drop APP1..APP15 (EXIF, XMP, ICC, IPTC, ...), non-JFIF APP0 and COM; copy the rest."""
    if not data.startswith(JPEG_SOI):
        raise NotAnImage("no JPEG start-of-image marker")
    out = bytearray(JPEG_SOI)
    removed: list[str] = []
    pos = 2
    size = len(data)
    while pos < size:
        if data[pos] != 0xFF:
            raise NotAnImage(f"JPEG marker expected at byte {pos}")
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            raise NotAnImage("JPEG ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            out += b"\xff\xd9"
            if pos < size and data[pos:].strip(b"\x00"):
                removed.append("trailing_data")
            return Cleaned(bytes(out), removed, "jpeg")
        if marker in _STANDALONE:
            out += bytes((0xFF, marker))
            continue
        if pos + 2 > size:
            raise NotAnImage("JPEG segment length missing")
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        end = pos + length
        if length < 2 or end > size:
            raise NotAnImage("JPEG segment runs past the end of the file")
        payload = data[pos + 2 : end]
        segment = bytes((0xFF, marker)) + data[pos:end]
        pos = end
        if 0xE0 <= marker <= 0xEF and not _keep_app(marker, payload):
            removed += _app_name(marker, payload)
            continue
        if marker == 0xFE:
            removed.append("comment")
            continue
        out += segment
        if marker == 0xDA:  # start of scan: copy the entropy-coded data up to the next marker
            scan_end = _entropy_end(data, pos)
            out += data[pos:scan_end]
            pos = scan_end
    raise NotAnImage("JPEG has no end-of-image marker")


def _entropy_end(data: bytes, pos: int) -> int:
    """Index of the first marker after entropy-coded data (0xFF00 stuffing and RSTn skipped)."""
    size = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= size:
            return size
        following = data[pos + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos += 2
            continue
        if following == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        return pos


# --- PNG -----------------------------------------------------------------------------------------
def _png_text_name(kind: bytes, payload: bytes) -> str:
    keyword = payload.split(b"\x00", 1)[0].decode("latin-1", "replace")
    if keyword == "XML:com.adobe.xmp":
        return "xmp"
    if keyword.lower() == "comment":
        return "comment"
    if keyword.lower() in {"raw profile type exif", "raw profile type app1"}:
        return "exif"
    return f"text:{keyword}"


def strip_png(data: bytes) -> Cleaned:
    """Keep the chunks that carry or shape pixels (PNG_KEEP); drop text, eXIf, iCCP, tIME, ..."""
    if not data.startswith(PNG_SIGNATURE):
        raise NotAnImage("no PNG signature")
    out = bytearray(PNG_SIGNATURE)
    removed: list[str] = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise NotAnImage("PNG chunk runs past the end of the file")
        chunk = data[pos:end]
        payload = data[pos + 8 : pos + 8 + length]
        pos = end
        if kind in PNG_KEEP:
            out += chunk
            if kind == b"IEND":
                if data[pos:].strip(b"\x00"):
                    removed.append("trailing_data")
                return Cleaned(bytes(out), removed, "png")
            continue
        if kind in {b"tEXt", b"zTXt", b"iTXt"}:
            removed.append(_png_text_name(kind, payload))
        elif kind == b"eXIf":
            removed += exif_tag_names(payload)
        elif kind == b"iCCP":
            removed.append("icc")
        elif kind == b"tIME":
            removed.append("time")
        else:
            removed.append(f"png:{kind.decode('latin-1')}")
    raise NotAnImage("PNG has no IEND chunk")


# --- anything else Pillow reads -----------------------------------------------------------------
def reencode_png(data: bytes, max_pixels: int) -> Cleaned:
    """Decode and re-encode losslessly as PNG, with no metadata at all."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = (image.format or "unknown").lower()
                width, height = image.size
                if width * height > max_pixels:
                    raise NotAnImage(f"{width}x{height} exceeds max_pixels={max_pixels}")
                removed = sorted(
                    {_info_name(key) for key in image.info if _info_name(key) is not None}
                )
                removed += _container_tags(image)
                removed = sorted(set(removed))
                frames = getattr(image, "n_frames", 1)
                image.load()
                pixels = image
                if pixels.mode not in {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}:
                    pixels = pixels.convert("RGBA" if "A" in pixels.mode else "RGB")
                clean = Image.frombytes(pixels.mode, pixels.size, pixels.tobytes())
                if pixels.mode == "P":
                    clean.putpalette(pixels.getpalette() or [])
                    if "transparency" in pixels.info:
                        clean.info["transparency"] = pixels.info["transparency"]
                buffer = io.BytesIO()
                clean.save(buffer, format="PNG")
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise NotAnImage(f"{type(exc).__name__}: {exc}"[:300]) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, NotAnImage):
            raise
        raise NotAnImage(f"corrupt image: {type(exc).__name__}: {exc}"[:300]) from exc
    note = f"{fmt} decoded and re-encoded losslessly as PNG"
    if frames > 1:
        note += f"; only the first of {frames} frames kept"
        removed.append("extra_frames")
    return Cleaned(buffer.getvalue(), removed, fmt, "png", note)


# TIFF tags that describe the pixel layout, not the picture's circumstances.
_STRUCTURAL_TAGS = frozenset(
    {
        "NewSubfileType",
        "SubfileType",
        "ImageWidth",
        "ImageLength",
        "BitsPerSample",
        "Compression",
        "PhotometricInterpretation",
        "FillOrder",
        "StripOffsets",
        "Orientation",
        "SamplesPerPixel",
        "RowsPerStrip",
        "StripByteCounts",
        "XResolution",
        "YResolution",
        "PlanarConfiguration",
        "ResolutionUnit",
        "Predictor",
        "ColorMap",
        "TileWidth",
        "TileLength",
        "TileOffsets",
        "TileByteCounts",
        "ExtraSamples",
        "SampleFormat",
        "JPEGTables",
        "YCbCrSubSampling",
        "YCbCrPositioning",
        "ReferenceBlackWhite",
    }
)


def _container_tags(image: Any) -> list[str]:
    """Descriptive tags a container (TIFF, WebP, ...) exposes through getexif()."""
    from PIL import ExifTags

    try:
        exif = image.getexif()
    except Exception:
        return []
    names = {ExifTags.TAGS.get(tag, f"0x{tag:04X}") for tag in exif}
    if ExifTags.IFD.GPSInfo in exif:
        names.add("GPSInfo")
    names -= _STRUCTURAL_TAGS | {"ExifOffset"}
    return ["exif", *(f"exif:{name}" for name in names)] if names else []


def _info_name(key: Any) -> str | None:
    name = str(key).lower()
    if name in {"exif"}:
        return "exif"
    if name in {"icc_profile"}:
        return "icc"
    if name in {"xmp", "xml:com.adobe.xmp"}:
        return "xmp"
    if name in {"comment", "comments"}:
        return "comment"
    if name in {"transparency", "duration", "loop", "background", "version", "compression"}:
        return None
    return f"info:{key}"


def clean(data: bytes, max_pixels: int) -> Cleaned:
    if not data:
        raise NotAnImage("empty file")
    if data.startswith(JPEG_SOI):
        cleaned = strip_jpeg(data)
    elif data.startswith(PNG_SIGNATURE):
        cleaned = strip_png(data)
    else:
        return reencode_png(data, max_pixels)
    verify_pixels(data, cleaned.data, max_pixels)
    return cleaned


def verify_pixels(before: bytes, after: bytes, max_pixels: int) -> None:
    """Decode both versions and insist they are identical (skipped above max_pixels)."""
    import numpy as np
    from PIL import Image

    def pixels(data: bytes) -> Any:
        with Image.open(io.BytesIO(data)) as image:
            if image.size[0] * image.size[1] > max_pixels:
                return None
            return np.asarray(image)

    try:
        original = pixels(before)
    except Exception as exc:
        raise NotAnImage(f"corrupt image: {type(exc).__name__}: {exc}"[:300]) from exc
    if original is None:
        return
    stripped = pixels(after)
    if original.shape != stripped.shape or not np.array_equal(original, stripped):
        raise AssertionError("metadata removal changed the pixels")  # a bug, never silent


# --- naming the copies ---------------------------------------------------------------------------
def output_name(relative: str, cleaned: Cleaned) -> str:
    if cleaned.converted_to:
        return str(PurePosixPath(relative).with_suffix("." + cleaned.converted_to))
    return relative


def mime_type(cleaned: Cleaned) -> str:
    kind = cleaned.converted_to or cleaned.fmt
    return {"jpeg": "image/jpeg", "png": "image/png"}.get(kind, "application/octet-stream")
