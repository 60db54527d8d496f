"""Bare Keras: the same VGG16, weights, images and size as fruitlens, in one plain Python loop.

No Spark, one process, every core for TensorFlow: read the bytes, decode them with the same
decoder, and run the network batch by batch. This is the practical ceiling a Spark job on the
same machine is measured against. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def list_images(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file() and path.suffix == ".jpg")


def decode_batch(files: list[Path], size: int) -> np.ndarray:
    from fruitlens.pipeline import decode

    pixels = [decode.decode(path.read_bytes(), size, 1 << 40).pixels for path in files]
    return np.stack([item for item in pixels if item is not None]).astype(np.float32)


def timed_loop(
    files: list[Path], size: int, batch: int, forward: Callable[[np.ndarray], Any]
) -> dict[str, float]:
    """Decode + forward over `files`; returns images/s, the decode share of the time, and the
    process's CPU time per image (all its threads: what a featurize worker's is set against)."""
    decode_s = model_s = 0.0
    cpu_start = time.process_time()
    start = time.perf_counter()
    for offset in range(0, len(files), batch):
        t0 = time.perf_counter()
        pixels = decode_batch(files[offset : offset + batch], size)
        t1 = time.perf_counter()
        np.asarray(forward(pixels))
        model_s += time.perf_counter() - t1
        decode_s += t1 - t0
    total = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    return {
        "images": len(files),
        "batch_size": batch,
        "seconds": total,
        "images_per_s": len(files) / total,
        "decode_s": decode_s,
        "model_s": model_s,
        "cpu_s": cpu_s,
        "cpu_ms_per_image": 1000 * cpu_s / len(files),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=Path, required=True, help="folder of .jpg files")
    parser.add_argument("--weights", type=Path, required=True, help="a VGG16 notop weights file")
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--batch-sizes", default="16,32,64")
    parser.add_argument("--trial-images", type=int, default=128)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16-keras", "bf16-grappler"),
        help="fp32; bf16 by Keras's mixed_bfloat16 policy (what fruitlens uses); or bf16 by "
        "TensorFlow's grappler rewrite auto_mixed_precision_onednn_bfloat16 of a float32 model",
    )
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if args.precision == "bf16-grappler":
        # Process-wide: every graph traced from here on is rewritten to bf16 where oneDNN can.
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    from fruitlens import weights
    from fruitlens.pipeline.featurize import compile_forward

    files = list_images(args.images)
    if args.limit:
        files = files[: args.limit]
    build_start = time.perf_counter()
    model = weights.build_vgg16(args.image_size, bf16=args.precision == "bf16-keras")
    weights.load_into(model, args.weights)
    forward = compile_forward(model, args.image_size)
    build_s = time.perf_counter() - build_start

    # Pick the batch size on a short trial (after one warm-up call per size, which traces it).
    trials = []
    trial_files = files[: args.trial_images]
    for batch in (int(item) for item in args.batch_sizes.split(",")):
        forward(decode_batch(trial_files[:batch], args.image_size))
        trials.append(timed_loop(trial_files, args.image_size, batch, forward))
    best = max(trials, key=lambda trial: trial["images_per_s"])["batch_size"]
    full = timed_loop(files, args.image_size, best, forward)

    # model.predict, the API most notebooks call, at the same batch size, for reference.
    def predict(pixels: np.ndarray) -> Any:
        from keras.applications.vgg16 import preprocess_input

        return model.predict(preprocess_input(pixels), batch_size=best, verbose=0)

    predict(decode_batch(trial_files[:best], args.image_size))
    predicted = timed_loop(trial_files, args.image_size, best, predict)
    print(
        json.dumps(
            {
                "images_per_s": full["images_per_s"],
                "best_batch_size": best,
                "full": full,
                "trials": trials,
                "model_predict": predicted,
                "build_s": build_s,
                "threads": args.threads,
                "image_size": args.image_size,
                "precision": args.precision,
            }
        )
    )


if __name__ == "__main__":
    main()
