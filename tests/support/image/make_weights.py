"""Write a seeded VGG16 notop weights file in the legacy Keras .h5 layout of the ImageNet file.

Runs inside the image's python-deps build stage (TensorFlow is not needed on the host): the image
test bakes this file in place of the 58 MB ImageNet download, so the image's default
FRUITLENS_WEIGHTS path is exercised with the same file format and name as in production.
The values are a fixed-seed random init: the features mean nothing, the loading path is real.

Usage: python make_weights.py OUTPUT.h5 [SEED]
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import h5py
    import keras
    import numpy as np
    from keras.src.legacy.saving import legacy_h5_format

    output = Path(argv[1])
    seed = int(argv[2]) if len(argv) > 2 else 0
    model = keras.applications.VGG16(weights=None, include_top=False)
    rng = np.random.Generator(np.random.PCG64(seed))
    model.set_weights(
        [rng.uniform(-0.05, 0.05, size=tuple(w.shape)).astype("float32") for w in model.weights]
    )
    partial = output.with_name(output.name + ".partial")
    with h5py.File(partial, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    partial.replace(output)
    # Read it back the way Keras reads the ImageNet file, so a bad file fails here, not in Spark.
    check = keras.applications.VGG16(weights=None, include_top=False, pooling="avg")
    check.load_weights(output)
    print(f"wrote {output} ({output.stat().st_size} bytes, seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
