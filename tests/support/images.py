"""Small images the tests make themselves, one per awkward case, with the outcome each must get."""

from __future__ import annotations

import functools
import io
from pathlib import Path

from PIL import Image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def rgb_jpeg(colour: tuple[int, int, int] = (200, 40, 40), size: int = 100) -> bytes:
    return encode(Image.new("RGB", (size, size), colour), "JPEG", quality=95)


def gps_exif_jpeg() -> bytes:
    """A JPEG whose EXIF holds a GPS position, a camera serial and an owner's name."""
    image = Image.new("RGB", (100, 100), (250, 180, 20))
    exif = Image.Exif()
    exif[0x013B] = "Jeanne Grower"  # Artist
    exif[0xA431] = "SERIAL-4242-XYZ"  # BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.0)
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.0)
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)


@functools.cache  # encoding its 400 M pixels takes 0.7 s, and bad_inputs() is called per test
def bomb_png(side: int = 20000) -> bytes:
    """20000 x 20000 pixels in a few kB: a decompression bomb if anyone decodes it."""
    return encode(Image.new("1", (side, side)), "PNG", optimize=False)


def bad_inputs() -> dict[str, tuple[bytes, str | None]]:
    """Relative path -> (bytes, expected rejection reason or None when it must be processed)."""
    truncated = rgb_jpeg((10, 200, 10))
    corrupt = bytearray(rgb_jpeg((10, 10, 200)))
    corrupt[400:] = b"\x00" * (len(corrupt) - 400)
    return {
        "Odd Cases/empty.jpg": (b"", "empty_file"),
        "Odd Cases/truncated.jpg": (truncated[: len(truncated) // 2], "corrupt_image"),
        "Odd Cases/corrupt.jpg": (bytes(corrupt), "corrupt_image"),
        "Odd Cases/notes.jpg": (b"this is a text file, not a photo\n" * 4, "not_an_image"),
        "Odd Cases/bomb.png": (bomb_png(), "too_many_pixels"),
        "Odd Cases/alpha.png": (encode(Image.new("RGBA", (80, 80), (255, 0, 0, 128)), "PNG"), None),
        "Odd Cases/gray.jpg": (encode(Image.new("L", (100, 100), 90), "JPEG"), None),
        "Odd Cases/cmyk.jpg": (encode(Image.new("CMYK", (100, 100), (0, 80, 80, 0)), "JPEG"), None),
        "Odd Cases/deep16.png": (encode(Image.new("I;16", (100, 100), 40000), "PNG"), None),
        "Pépino à l'été 2/d'angle «1».jpg": (rgb_jpeg((120, 200, 90)), None),
        "stray-at-root.jpg": (rgb_jpeg(), "no_class_folder"),
    }


def write_tree(root: Path, files: dict[str, tuple[bytes, str | None]]) -> Path:
    for relative, (data, _) in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (root / "Empty Class").mkdir(exist_ok=True)  # an empty class folder lists nothing
    return root
