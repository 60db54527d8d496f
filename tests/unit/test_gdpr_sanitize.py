"""`fruitlens sanitize`: metadata removed byte for byte, pixels identical, SSE on every write.

No Spark here: sanitize is plain Python over Storage. The S3 cases use the real moto server.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from fruitlens.outputs import names
from fruitlens.pipeline import metadata
from support.cli import invoke
from support.images import encode, gps_exif_jpeg
from support.s3 import S3Server

# What gps_exif_jpeg() and the other fixtures below hide in their metadata.
SECRETS = (b"Jeanne Grower", b"SERIAL-4242-XYZ", b"Exif\x00\x00", b"ICC_PROFILE", b"GPSInfo\x00")
COMMENT = b"shot at 12 rue des Pommes by Jeanne"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">Jeanne Grower at 48.8580N</x:xmpmeta>'
FAKE_ICC = b"fake-icc-profile-of-a-camera" * 8


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def artist_exif() -> bytes:
    exif = Image.Exif()
    exif[0x013B] = "Jeanne Grower"
    exif[0xA431] = "SERIAL-4242-XYZ"
    return exif.tobytes()


def loaded_jpeg() -> bytes:
    """Progressive JPEG with EXIF, ICC, a comment and an XMP packet spliced in as APP1."""
    base = encode(
        Image.new("RGB", (64, 48), (30, 140, 220)),
        "JPEG",
        progressive=True,
        exif=artist_exif(),
        icc_profile=FAKE_ICC,
        comment=COMMENT,
    )
    packet = b"http://ns.adobe.com/xap/1.0/\x00" + XMP
    segment = b"\xff\xe1" + (len(packet) + 2).to_bytes(2, "big") + packet
    return base[:2] + segment + base[2:]


def loaded_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jeanne Grower")
    info.add_text("Comment", COMMENT.decode())
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    image = Image.new("RGBA", (40, 30), (200, 10, 10, 128))
    data = encode(image, "PNG", pnginfo=info, exif=artist_exif(), icc_profile=FAKE_ICC)
    # a tIME chunk: when the picture was made
    body = b"tIME" + bytes([7, 234, 6, 1, 12, 0, 0])
    import zlib

    chunk = (7).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")
    return data[:-12] + chunk + data[-12:]


def assert_clean(data: bytes) -> None:
    for secret in (*SECRETS, COMMENT, XMP, FAKE_ICC, b"tIME", b"eXIf", b"tEXt", b"iTXt"):
        assert secret not in data, secret


def test_gps_jpeg_loses_exif_losslessly():
    original = gps_exif_jpeg()
    assert b"SERIAL-4242-XYZ" in original and b"Jeanne Grower" in original
    cleaned = metadata.clean(original, 10**8)
    assert {"exif:GPSInfo", "exif:BodySerialNumber", "exif:Artist"} <= set(cleaned.removed)
    assert_clean(cleaned.data)
    assert cleaned.data.startswith(b"\xff\xd8\xff\xe0") and b"JFIF\x00" in cleaned.data[:20]
    assert np.array_equal(pixels(original), pixels(cleaned.data))
    with Image.open(io.BytesIO(cleaned.data)) as image:
        assert not image.getexif() and "icc_profile" not in image.info


def test_progressive_jpeg_with_xmp_icc_comment():
    original = loaded_jpeg()
    cleaned = metadata.clean(original, 10**8)
    assert {"xmp", "icc", "comment", "exif:Artist", "exif:BodySerialNumber"} <= set(cleaned.removed)
    assert_clean(cleaned.data)
    assert np.array_equal(pixels(original), pixels(cleaned.data))
    # the entropy-coded scans are copied verbatim: only the metadata bytes went away
    assert len(original) - len(cleaned.data) >= len(XMP) + len(FAKE_ICC) + len(COMMENT)


def test_png_keeps_pixels_and_transparency_drops_text_exif_icc_time():
    original = loaded_png()
    cleaned = metadata.clean(original, 10**8)
    assert {"text:Author", "comment", "xmp", "exif:Artist", "icc", "time"} <= set(cleaned.removed)
    assert_clean(cleaned.data)
    assert np.array_equal(pixels(original), pixels(cleaned.data))
    assert pixels(cleaned.data).shape == (30, 40, 4)


def test_other_formats_are_reencoded_losslessly_as_png():
    image = Image.new("RGB", (33, 21), (5, 99, 250))
    image.putpixel((3, 4), (1, 2, 3))
    original = encode(image, "TIFF", exif=artist_exif())
    cleaned = metadata.clean(original, 10**8)
    assert cleaned.converted_to == "png" and "re-encoded losslessly as PNG" in cleaned.note
    assert "exif:Artist" in cleaned.removed
    assert cleaned.data.startswith(metadata.PNG_SIGNATURE)
    assert_clean(cleaned.data)
    assert np.array_equal(pixels(original), pixels(cleaned.data))


@pytest.mark.parametrize(
    "data", [b"", b"plain text, not a photo\n", gps_exif_jpeg()[:300], b"\x89PNG\r\n\x1a\n"]
)
def test_non_images_and_broken_files_are_refused(data):
    with pytest.raises(metadata.NotAnImage):
        metadata.clean(data, 10**8)


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "Training/Apple Braeburn/gps.jpg": gps_exif_jpeg(),
        "Training/Apple Braeburn/loaded.jpg": loaded_jpeg(),
        "Test/Pépino 2/loaded.png": loaded_png(),
        "Test/Pépino 2/scan.tiff": encode(Image.new("L", (20, 20), 77), "TIFF"),
        "Test/Pépino 2/notes.jpg": b"not an image at all\n",
        "Test/Pépino 2/.DS_Store": b"Jeanne Grower",
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return files


def test_sanitize_cli_on_local_folders(tmp_path):
    files = make_tree(tmp_path / "in")
    result = invoke("sanitize", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"))
    assert result.code == 0, result.stderr[-3000:]
    totals = json.loads(result.stdout)["totals"]
    assert totals["written"] == 4 and totals["sanitized"] == 3 and totals["converted"] == 1
    assert totals["rejected"] == 1 and totals["skipped_hidden"] == 1
    assert totals["files_with"]["exif:GPSInfo"] == 1
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix()
        for p in (tmp_path / "out").rglob("*")
        if p.is_file()
    )
    assert written == [
        "Test/Pépino 2/loaded.png",
        "Test/Pépino 2/scan.png",
        "Training/Apple Braeburn/gps.jpg",
        "Training/Apple Braeburn/loaded.jpg",
        names.SANITIZE_REPORT,
    ]
    for relative in written:
        assert_clean((tmp_path / "out" / relative).read_bytes())
    for relative in ("Training/Apple Braeburn/gps.jpg", "Test/Pépino 2/loaded.png"):
        assert np.array_equal(
            pixels(files[relative]), pixels((tmp_path / "out" / relative).read_bytes())
        )
    report = json.loads((tmp_path / "out" / names.SANITIZE_REPORT).read_text())
    by_path = {entry.get("path"): entry for entry in report["files"]}
    assert "exif:BodySerialNumber" in by_path["Training/Apple Braeburn/gps.jpg"]["removed"]
    assert by_path["Test/Pépino 2/notes.jpg"]["status"] == "rejected"
    assert report["audit"]["eu_region"] is True


def test_output_inside_input_is_refused(tmp_path):
    make_tree(tmp_path / "in")
    result = invoke(
        "sanitize", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "in" / "clean")
    )
    assert result.code == 2 and "inside" in result.stderr


@pytest.mark.s3
def test_sanitize_on_s3_encrypts_and_pseudonymizes(s3_server: S3Server, tmp_path):
    bucket = s3_server.make_bucket(f"sanitize-{uuid.uuid4().hex[:8]}")
    make_tree(tmp_path / "in")
    s3_server.upload_tree(tmp_path / "in", bucket, "incoming")
    result = invoke(
        "sanitize",
        "--input",
        f"s3a://{bucket}/incoming",
        "--output",
        f"s3a://{bucket}/raw",
        "--pseudonymize",
        env={"FRUITLENS_S3_ENDPOINT": s3_server.endpoint},
    )
    assert result.code == 0, result.stderr[-3000:]
    client = s3_server.client()
    keys = [
        item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix="raw/")["Contents"]
    ]
    assert "raw/Training/Apple Braeburn/gps.jpg" in keys and len(keys) == 5
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key
        assert_clean(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    report = client.get_object(Bucket=bucket, Key=f"raw/{names.SANITIZE_REPORT}")["Body"].read()
    assert b"gps.jpg" not in report and b"Apple Braeburn" not in report  # ids, not paths
    assert all("path" not in entry for entry in json.loads(report)["files"])
