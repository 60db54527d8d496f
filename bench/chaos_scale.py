"""`make chaos`: 20 000+ images through `local[2]`, then an exact check of the accounting.

The input is built OUTSIDE the repository (default: a temporary folder) from the shared
Fruits-360 subset, repeated until --images files exist. Every repeat gets new content ids: a
few bytes are appended after the JPEG's end-of-image marker (decoders ignore them, SHA-256 does
not), so no two files share an id. A known set of bad files is added (empty, text, truncated,
no class folder), so the expected `rejected_by_reason` is known exactly.

Then `fruitlens run` (seeded weights, --master local[2], no plots) runs in a subprocess whose
whole process tree is sampled for peak memory (bench/proctree.py), and the script checks:
exit status 0, listed = processed + rejected = files written, rejections by reason exactly as
planted, features/ (through run.json's `outputs`) holding one row per processed image with
unique ids. It prints and writes a JSON report (--report, default bench/results/chaos.json).
Exit status 0 only when every check holds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import TreeSampler

REPO = Path(__file__).resolve().parents[1]
BAD_COPIES = 5  # of each kind below
BAD_KINDS = {
    # file name pattern -> expected rejection reason
    "Odd/empty-{n}.jpg": "empty_file",
    "Odd/notes-{n}.jpg": "not_an_image",
    "stray-{n}.jpg": "no_class_folder",  # a real JPEG, but directly under the root
}


def bad_bytes(reason: str, n: int, jpeg: bytes) -> bytes:
    if reason == "empty_file":
        return b""
    if reason == "not_an_image":
        return f"notes {n}: not an image at all\n".encode() * 8
    return jpeg + f"stray-{n}".encode()


def build_input(source: Path, target: Path, images: int, split: bool) -> dict[str, object]:
    """<Class>/c<repeat>_<file> (or Training|Test/<Class>/... with `split`): the subset
    cycled, each repeat with new bytes."""
    originals = sorted(p for p in source.rglob("*.jpg") if p.is_file())
    if not originals:
        raise SystemExit(f"no .jpg under {source}; set FRUITLENS_DATASET")
    written = 0
    repeat = 0
    while written < images:
        for original in originals:
            if written >= images:
                break
            relative = original.relative_to(source)
            if not split and relative.parts[0] in ("Training", "Test"):
                relative = relative.relative_to(relative.parts[0])
            destination = target / relative.parent / f"c{repeat}_{relative.name}"
            destination.parent.mkdir(parents=True, exist_ok=True)
            data = original.read_bytes()
            destination.write_bytes(data if repeat == 0 else data + f"copy-{repeat}".encode())
            written += 1
        repeat += 1
    expected: dict[str, int] = {}
    jpeg = originals[0].read_bytes()
    for pattern, reason in BAD_KINDS.items():
        for n in range(BAD_COPIES):
            path = target / pattern.format(n=n)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bad_bytes(reason, n, jpeg))
            expected[reason] = expected.get(reason, 0) + 1
    return {"images": written, "repeats": repeat, "bad_by_reason": dict(sorted(expected.items()))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--source", type=Path, default=None, help="default: FRUITLENS_DATASET")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--split",
        action="store_true",
        help="keep Training/Test (trains and scores the classifier too; much longer)",
    )
    parser.add_argument("--report", type=Path, default=REPO / "bench" / "results" / "chaos.json")
    parser.add_argument("--keep", action="store_true", help="keep the input and output")
    args = parser.parse_args()

    source = args.source or Path(
        os.environ.get("FRUITLENS_DATASET", REPO.parent / "shared" / "datasets" / "fruits360")
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fruitlens-chaos-"))
    if workdir.resolve().is_relative_to(REPO):
        raise SystemExit("the chaos input must live outside the repository")
    input_dir, output_dir = workdir / "input", workdir / "output"
    shutil.rmtree(input_dir, ignore_errors=True)
    shutil.rmtree(output_dir, ignore_errors=True)
    started = time.monotonic()
    planted = build_input(source, input_dir, args.images, args.split)
    built_s = time.monotonic() - started
    files = sum(1 for p in input_dir.rglob("*") if p.is_file())
    print(f"chaos: {files} files under {input_dir} ({built_s:.0f} s)", flush=True)

    command = [sys.executable, "-m", "fruitlens", "run", "--input", str(input_dir)]
    command += ["--output", str(output_dir), "--weights", "seeded:0", "--master", args.master]
    command += ["--no-plots", "--pca-k", "50"]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO)
    sampler = TreeSampler(process.pid, interval=1.0).start()
    code = process.wait()
    sampler.stop()
    run_s = time.monotonic() - started

    checks: dict[str, bool] = {"exit_status_0": code == 0}
    document: dict[str, object] = {}
    duplicate_ids = None
    if code == 0:
        import pyarrow.parquet as pq

        document = json.loads((output_dir / "run.json").read_text())
        images = document["images"]
        expected_rejected = sum(planted["bad_by_reason"].values())
        checks["listed_equals_files"] = images["listed"] == files
        checks["listed_is_processed_plus_rejected"] = (
            images["listed"] == images["processed"] + images["rejected"]
        )
        checks["processed_equals_good_images"] = images["processed"] == planted["images"]
        by_reason = images["rejected_by_reason"]
        checks["rejected_by_reason_exact"] = by_reason == planted["bad_by_reason"]
        checks["rejected_total_exact"] = images["rejected"] == expected_rejected
        features = pq.read_table(document["outputs"]["features"], columns=["image_id"])
        ids = features.column("image_id").to_pylist()
        checks["features_one_row_per_image"] = len(ids) == planted["images"]
        # Fruits-360 itself holds a few byte-identical files: reported, not a failure.
        duplicate_ids = len(ids) - len(set(ids))
    report = {
        "files": files,
        "planted": planted,
        "master": args.master,
        "run_s": round(run_s, 1),
        "images_per_s": round(files / run_s, 2) if run_s else None,
        "memory": sampler.summary(),
        "run_json_images": document.get("images"),
        "duplicate_content_ids": duplicate_ids,
        "timings_s": document.get("timings_s"),
        "checks": checks,
        "ok": all(checks.values()),
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
