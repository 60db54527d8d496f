"""featurize.native_size: the images' own size, from headers the driver reads (no Spark)."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from PIL import Image

from fruitlens.commands.preflight import list_input
from fruitlens.config import Config
from fruitlens.outputs.storage import Storage
from fruitlens.pipeline import decode, featurize
from support.s3 import S3Server


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_sides(root: Path, sides: list[int]) -> None:
    for i, side in enumerate(sides):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(png(side, side // 2))


def test_the_commonest_larger_side_wins(tmp_path: Path):
    write_sides(tmp_path, [64, 64, 48])
    config = Config(input=str(tmp_path))
    storage = Storage(config)
    assert featurize.native_size(storage, list_input(config, storage).listed) == 64


def test_files_gone_since_the_listing_or_not_images_are_left_out(tmp_path: Path):
    write_sides(tmp_path, [48, 64, 64])
    (tmp_path / "class0" / "notes.jpg").write_text("not an image")
    config = Config(input=str(tmp_path))
    storage = Storage(config)
    listed = list_input(config, storage).listed
    for path in (tmp_path / "class1" / "1.png", tmp_path / "class0" / "2.png"):
        path.unlink()  # both 64 px: the 48 px one is all that is left to read
    assert featurize.native_size(storage, listed) == 48
    for path in tmp_path.rglob("*.png"):
        path.unlink()
    assert featurize.native_size(storage, listed) == 100  # nothing readable: the default


def test_on_s3_each_probe_is_one_ranged_get(s3_server: S3Server, tmp_path: Path):
    write_sides(tmp_path, [40] * (featurize.SIZE_PROBE_FILES + 3))
    # A JPEG larger than the range read: its header still lies in the bytes read.
    noisy = io.BytesIO()
    Image.effect_noise((600, 600), 100).convert("RGB").save(noisy, format="JPEG", quality=100)
    assert len(noisy.getvalue()) > featurize.SIZE_PROBE_BYTES
    (tmp_path / "large.jpg").write_bytes(noisy.getvalue())
    bucket = s3_server.make_bucket(f"probe-{uuid.uuid4().hex[:8]}")
    s3_server.upload_tree(tmp_path, bucket, "in")
    config = Config(input=f"s3://{bucket}/in", s3_endpoint=s3_server.endpoint)
    storage = Storage(config)
    listed = list_input(config, storage).listed
    ranges: list[bytes] = []
    storage.s3.meta.events.register(
        "before-send.s3.GetObject", lambda request, **_: ranges.append(request.headers["Range"])
    )
    assert featurize.native_size(storage, listed) == 40
    whole_range = f"bytes=0-{featurize.SIZE_PROBE_BYTES - 1}".encode()
    assert ranges == [whole_range] * featurize.SIZE_PROBE_FILES
    head = storage.read_bytes(f"s3a://{bucket}/in/large.jpg", featurize.SIZE_PROBE_BYTES)
    assert len(head) == featurize.SIZE_PROBE_BYTES
    assert decode.image_size(head) == (600, 600)
