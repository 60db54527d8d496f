"""Checks every command makes before Spark starts: a wrong flag costs a line, not a JVM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fruitlens import paths, session
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import names
from fruitlens.outputs.commit import committed_manifest
from fruitlens.outputs.storage import Storage, local_path
from fruitlens.pipeline.featurize import BF16, Cpu, this_cpu
from fruitlens.pipeline.images import symlink_loop


def require_input(config: Config, storage: Storage) -> str:
    if not config.input:
        raise UsageError("--input is required")
    if not storage.exists(config.input):
        raise UsageError(f"input {config.input} does not exist")
    if not storage.has_children(config.input):
        raise UsageError(f"input {config.input} is empty or is not a folder/prefix of images")
    if not paths.is_s3(config.input):
        loop = symlink_loop(Path(local_path(config.input)))
        if loop:
            raise UsageError(
                f"input {config.input} holds a symbolic link loop: {loop[0]} -> {loop[1]}; "
                "Spark's listing would follow it dozens of times (one image, many rows): "
                "remove the link"
            )
    return config.input


def require_output(config: Config, storage: Storage) -> str:
    if not config.output:
        raise UsageError("--output is required")
    if storage.has_children(config.output) and not (config.overwrite or config.incremental):
        if not storage.exists(paths.join(config.output, names.RUN_JSON)):
            raise UsageError(
                f"output {config.output} holds files but no {names.RUN_JSON} (a run that "
                "failed, or files of another tool); pass --overwrite to replace them"
            )
        raise UsageError(
            f"output {config.output} already holds files; pass --overwrite to replace them "
            "(or --incremental to reuse their features)"
        )
    return config.output


def require_precision(config: Config, cpu: Cpu | None = None) -> None:
    """`--precision bf16` is refused where this process's CPU will featurize without bf16.

    Only a local run featurizes on the driver's CPU; on a cluster the executors may be other
    instance types, so each one decides, falls back to fp32 with a logged reason, and run.json
    lists it.
    """
    if config.precision != BF16 or not session.runs_locally(config):
        return
    cpu = cpu or this_cpu()
    if not cpu.bf16_flags:
        raise UsageError(
            f"--precision bf16: this CPU ({cpu.model}) has neither amx_bf16 nor avx512_bf16, "
            "so bf16 would be emulated and slower; use --precision auto or fp32"
        )


def require_model(config: Config, storage: Storage) -> str:
    if not config.model:
        raise UsageError("--model is required")
    if not storage.exists(config.model):
        raise UsageError(f"model {config.model} does not exist")
    return config.model


def read_run_document(run_uri: str, storage: Storage) -> dict[str, Any]:
    """run.json of an earlier `fruitlens run` (its --output folder)."""
    document = committed_manifest(run_uri, storage)
    if not document:
        raise UsageError(f"{run_uri} holds no {names.RUN_JSON}: pass the --output folder of a run")
    return document


def require_features_run(config: Config, storage: Storage) -> dict[str, Any]:
    """run.json of the run that --features names."""
    if not config.features:
        raise UsageError("--features is required (the --output folder of a run)")
    return read_run_document(config.features, storage)
