"""OpenVINO, the anchor a user might pick instead for CPU inference: the same VGG16 and images.

Two sub-commands, because OpenVINO lives in a benchmark-only virtualenv without TensorFlow
(`make bench-openvino`; it is no dependency of fruitlens):

  export  (fruitlens's venv) the featurizer's exact graph, VGG16 preprocessing + network +
          float32 output, as a TensorFlow SavedModel
  run     (OpenVINO's venv) convert that SavedModel with openvino.convert_model, compile it for
          the CPU at each asked precision (INFERENCE_PRECISION_HINT f32 / bf16; i8: NNCF's
          post-training quantization, calibrated on the slice's first images, the layers it
          leaves unquantized at the CPU's default precision), and time it in the same decode +
          forward loop as bench/keras_loop.py. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from keras_loop import decode_batch, list_images, timed_loop


def export(weights_file: Path, image_size: int, target: Path) -> None:
    import tensorflow as tf

    from fruitlens import weights

    model = weights.build_vgg16(image_size)
    weights.load_into(model, weights_file)
    from keras.applications.vgg16 import preprocess_input

    module = tf.Module()
    module.model = model

    # The body of fruitlens.featurize.compile_forward, as a signature OpenVINO can convert.
    @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)])
    def serve(batch: Any) -> Any:
        return {"features": tf.cast(model(preprocess_input(batch), training=False), tf.float32)}

    module.serve = serve
    tf.saved_model.save(module, str(target), signatures={"serving_default": serve})


def run(model_dir: Path, images: Path, threads: int, precisions: list[str], batch: int) -> None:
    import numpy as np
    import openvino as ov

    core = ov.Core()
    converted = ov.convert_model(str(model_dir))
    files = list_images(images)
    results: dict[str, Any] = {
        "openvino": ov.__version__,
        "cpu_capabilities": core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
    }
    reference = None
    for precision in precisions:
        start = time.perf_counter()
        settings = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if precision == "i8":
            model = quantized(converted, files)
        else:
            model = converted
            settings["INFERENCE_PRECISION_HINT"] = precision
        compiled = core.compile_model(model, "CPU", settings)
        request = compiled.create_infer_request()

        def forward(pixels: Any, request: Any = request) -> Any:
            return next(iter(request.infer({0: pixels}).values()))

        first = decode_batch(files[:batch], 100)
        out = np.asarray(forward(first)).copy()
        build_s = time.perf_counter() - start
        timed = timed_loop(files, first.shape[1], batch, forward)
        entry = {**timed, "compile_s": build_s}
        if reference is None:
            reference = out
        else:  # per-image cosine against the first precision measured (f32)
            cosine = (out * reference).sum(1) / (
                np.linalg.norm(out, axis=1) * np.linalg.norm(reference, axis=1)
            )
            entry["min_cosine_vs_first"] = float(cosine.min())
        results[precision] = entry
    print(json.dumps(results))


def quantized(converted: Any, files: list[Path], calibration_images: int = 128) -> Any:
    """`converted` with int8 weights and activations: NNCF's default post-training quantization,
    its activation ranges taken from the first `calibration_images` images, one at a time."""
    import nncf

    pixels = decode_batch(files[:calibration_images], 100)
    calibration = nncf.Dataset([pixels[index : index + 1] for index in range(len(pixels))])
    return nncf.quantize(converted, calibration, subset_size=len(pixels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    exporting = sub.add_parser("export")
    exporting.add_argument("--weights", type=Path, required=True)
    exporting.add_argument("--image-size", type=int, default=100)
    exporting.add_argument("--out", type=Path, required=True)
    running = sub.add_parser("run")
    running.add_argument("--model", type=Path, required=True, help="the exported SavedModel")
    running.add_argument("--images", type=Path, required=True)
    running.add_argument("--threads", type=int, required=True)
    running.add_argument("--precisions", default="f32,bf16,i8")
    running.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.command == "export":
        export(args.weights, args.image_size, args.out)
        print(json.dumps({"saved_model": str(args.out)}))
    else:
        run(args.model, args.images, args.threads, args.precisions.split(","), args.batch_size)


if __name__ == "__main__":
    main()
