"""The compute roofline of VGG16 featurization: multiply-adds per image and measured FLOP/s.

The limit is arithmetic, not a guess: VGG16's convolutions at the chosen size need a known
number of multiply-adds (MACs); TensorFlow's own float32 matmul on big square matrices, with the
same thread count, is the fastest rate this machine reaches on dense float32 work. Their ratio is
the images/s no featurizer on this CPU can beat by more than convolution-algorithm tricks.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

# VGG16's convolutional part (keras.applications.VGG16, include_top=False): per block, the output
# channels of its 3x3 'same' convolutions; a 2x2 max-pool (floor division) follows each block.
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)
KERNEL = 3


@dataclass(frozen=True)
class ConvLayer:
    name: str
    side: int  # output height = width ('same' padding keeps the input side)
    in_channels: int
    out_channels: int

    @property
    def macs(self) -> int:
        return self.side * self.side * KERNEL * KERNEL * self.in_channels * self.out_channels


def vgg16_conv_layers(image_size: int) -> list[ConvLayer]:
    """Every convolution of VGG16 at image_size x image_size, with the side it computes at."""
    layers = []
    side, channels = image_size, 3
    for block, widths in enumerate(VGG16_BLOCKS, start=1):
        for index, width in enumerate(widths, start=1):
            layers.append(ConvLayer(f"block{block}_conv{index}", side, channels, width))
            channels = width
        side //= 2  # MaxPooling2D(2, 2) with 'valid' padding floors odd sides
    return layers


def vgg16_macs(image_size: int) -> int:
    """Multiply-adds of the convolutions (pooling, ReLU, bias and preprocessing are < 0.1 %)."""
    return sum(layer.macs for layer in vgg16_conv_layers(image_size))


def roofline_images_per_s(image_size: int, flops_per_s: float) -> float:
    """Images/s if every multiply-add ran at the measured matmul rate (1 MAC = 2 FLOP)."""
    return flops_per_s / (2.0 * vgg16_macs(image_size))


def measure_matmul_flops(
    threads: int,
    sizes: tuple[int, ...] = (2048, 4096),
    seconds: float = 6.0,
    dtype: str = "float32",
) -> dict[str, Any]:
    """Best sustained FLOP/s of tf.linalg.matmul on square `dtype` matrices of a few sizes.

    bfloat16 products accumulate in float32 inside oneDNN (AMX tiles or AVX512_BF16 dot
    products), as the bf16 featurizer's convolutions do, so it is that path's roofline.

    The best of several timed windows per size, because the machine may be shared: the
    roofline is what the hardware can do, and a noisy neighbour only ever lowers a measurement.
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    @tf.function
    def product(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return tf.linalg.matmul(x, y)

    per_size = {}
    for size in sizes:
        a = tf.cast(tf.random.uniform((size, size)), dtype)
        b = tf.cast(tf.random.uniform((size, size)), dtype)
        product(a, b).numpy()  # trace and warm up oneDNN for this shape
        flop = 2.0 * size**3
        best, windows, deadline = 0.0, 0, time.perf_counter() + seconds / len(sizes)
        while time.perf_counter() < deadline or windows < 3:
            start = time.perf_counter()
            reps = 4 if size <= 2048 else 1
            for _ in range(reps):
                result = product(a, b)
            result.numpy()  # wait for the last one
            best = max(best, reps * flop / (time.perf_counter() - start))
            windows += 1
        per_size[str(size)] = best
    return {
        "flops_per_s": max(per_size.values()),
        "per_size": per_size,
        "threads": threads,
        "dtype": dtype,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--image-size", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="per data type")
    args = parser.parse_args()
    # float32 and bfloat16 in one process, one after the other: their ratio is what bf16 can
    # at most bring VGG16 on this CPU.
    measured = measure_matmul_flops(args.threads, seconds=args.seconds)
    bf16 = measure_matmul_flops(args.threads, seconds=args.seconds, dtype="bfloat16")
    print(
        json.dumps(
            {
                **measured,
                "image_size": args.image_size,
                "vgg16_macs_per_image": vgg16_macs(args.image_size),
                "roofline_images_per_s": roofline_images_per_s(
                    args.image_size, measured["flops_per_s"]
                ),
                "bf16": bf16,
                "bf16_roofline_images_per_s": roofline_images_per_s(
                    args.image_size, bf16["flops_per_s"]
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
