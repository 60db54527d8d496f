"""A stand-in for VGG16 where the network is not what a test is about: a small deterministic
function of the pixels with VGG16's output shape, given to the featurize stage through the same
parameter the job uses for the real network (featurize_batch's `model`, featurizer_udf's
`model_for`), or, for a whole command, in place of the job's `worker_model`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from pyspark import cloudpickle

from fruitlens.pipeline import featurize
from fruitlens.pipeline.featurize import FP32, Cpu, FeaturizerSpec, WorkerModel, resolve_here

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
    return WorkerModel(
        forward,
        FP32,
        "stand-in network",
        "test-worker",
        Cpu("test", frozenset()),
        threads=1,
        onednn=False,
    )


def pooled_model_for(spec: FeaturizerSpec) -> WorkerModel:
    """featurizer_udf's `model_for`: the stand-in network, with what a real worker reports of
    itself (the precision `spec` asks for as this CPU resolves it, the process, the CPU), so a
    whole command's run.json reads as the job's."""
    return WorkerModel(
        pooled_colours, *resolve_here(spec.precision), threads=spec.threads, onednn=False
    )


@contextlib.contextmanager
def stand_in_network() -> Iterator[None]:
    """While it lasts, every command run in this process featurizes with `pooled_model_for`:
    featurizer_udf looks `worker_model` up when a command builds its UDF, and ships what it
    finds to the workers (this module is pickled by value, below)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(featurize, "worker_model", pooled_model_for)
        yield


# Spark's Python workers cannot import this test folder: ship these functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
