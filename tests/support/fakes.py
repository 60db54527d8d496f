"""A stand-in for VGG16 where the network is not what a test is about: a small deterministic
function of the pixels with VGG16's output shape, given to the featurize stage through the same
parameter the job uses for the real network (featurize_batch's `model`, featurizer_udf's
`model_for`)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
from pyspark import cloudpickle

from fruitlens.pipeline.featurize import FP32, Cpu, WorkerModel

FEATURE_DIM = 512
GRID = 13  # 13 x 13 cells x 3 channels = 507 features, plus 5 whole-image statistics


def pooled_colours(batch: np.ndarray) -> np.ndarray:
    """(n, size, size, 3) pixels -> (n, 512): mean colour of each cell of a 13 x 13 grid, then
    the image's mean colour and its overall spread and brightness. Images of one fruit look
    alike under it, different fruits do not, which is all PCA and a classifier need."""
    rows = np.array_split(np.arange(batch.shape[1]), GRID)
    cols = np.array_split(np.arange(batch.shape[2]), GRID)
    cells = [batch[:, r][:, :, c].mean(axis=(1, 2)) for r in rows for c in cols]  # (n, 3) each
    whole = [batch.mean(axis=(1, 2)), batch.std(axis=(1, 2, 3))[:, None]]
    whole.append(batch.max(axis=(1, 2, 3))[:, None])
    features = np.concatenate([*cells, *whole], axis=1) / 255.0
    assert features.shape[1] == FEATURE_DIM
    return features.astype(np.float32)


def stand_in(forward: Callable[[np.ndarray], np.ndarray] = pooled_colours) -> WorkerModel:
    """A worker's model whose network is `forward`, with the facts run.json reads from it."""
    return WorkerModel(forward, FP32, "stand-in network", "test-worker", Cpu("test", frozenset()))


def pooled_model_for(spec: object) -> WorkerModel:
    """featurizer_udf's `model_for`: the same stand-in whatever the spec."""
    return stand_in()


# Spark's Python workers cannot import this test folder: ship these functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
