"""Checks every command makes before Spark starts: a wrong flag costs a line, not a JVM."""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fruitlens import paths, session
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import names
from fruitlens.outputs.commit import base_name, committed_manifest, dataset_location
from fruitlens.outputs.storage import Storage, local_path
from fruitlens.pipeline import images
from fruitlens.pipeline.featurize import BF16, Cpu, this_cpu
from fruitlens.pipeline.images import symlink_loop

log = logging.getLogger(__name__)

# run.json key of a run committed only to account for its images, then refused (too few
# images could be processed): the next run replaces it without --overwrite.
REFUSED = "refused"


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
                "the listing would follow it dozens of times (one image, many rows): "
                "remove the link"
            )
    return config.input


@dataclass
class InputListing:
    """What the input holds, from listing alone (names and sizes, no bytes read)."""

    # Names starting with "." or "_" anywhere under the root: Hadoop's listing skips them.
    hidden: int = 0
    classes: dict[str | None, set[str]] = field(default_factory=dict)  # split -> class names
    labelled: Counter[str | None] = field(default_factory=Counter)  # split -> files with a class
    # Each file by size, the empty and oversized ones apart (rejected unread).
    listed: images.Listed = field(kw_only=True)

    @property
    def files(self) -> int:
        return self.listed.files

    def describe_hidden(self) -> dict[str, Any]:
        """run.json's `listing`: what the listing leaves out, outside the image counts."""
        return {
            "hidden_files_skipped": self.hidden,
            "why": "names starting with '.' or '_' are hidden files to Spark's and Hadoop's "
            "listing; rename them to include them",
        }


def list_input(config: Config, storage: Storage) -> InputListing:
    listing = InputListing(listed=images.Listed(config.max_file_bytes))
    # Into folder links, as Spark's listing goes: require_input refused loops.
    for uri, relative, size in storage.list_files(str(config.input), follow_links=True):
        if paths.is_hidden(relative):
            listing.hidden += 1
            continue
        listing.listed.note(uri, size)
        label, split, refusal = images.class_rule(relative)
        if refusal is None:
            listing.classes.setdefault(split, set()).add(str(label))
            listing.labelled[split] += 1
    return listing


def warn_hidden(config: Config, listing: InputListing) -> None:
    """Said once every check has passed: a refused run's error stays its one line."""
    if listing.hidden:
        log.warning(
            "%d files under %s are skipped by the listing: %s",
            listing.hidden,
            config.input,
            listing.describe_hidden()["why"],
        )


def require_trainable(config: Config, listing: InputListing) -> None:
    """A run that will train needs two classes and more Training images than --pca-k: refused
    now rather than after featurizing everything."""
    if listing.files < 2:
        raise UsageError(
            f"input {config.input} holds {listing.files} image file(s) (and {listing.hidden} "
            "hidden); PCA and a classifier need at least 2 images"
        )
    both_splits = {"Training", "Test"} <= set(listing.classes)
    if both_splits:
        training_classes, training_files = listing.classes["Training"], listing.labelled["Training"]
    else:
        training_classes = set().union(*listing.classes.values()) if listing.classes else set()
        training_files = sum(listing.labelled.values())
    if (both_splits or config.test_fraction) and len(training_classes) < 2:
        named = ", ".join(sorted(training_classes)) or "none"
        raise UsageError(
            f"input {config.input} has {len(training_classes)} class folder(s) to train on "
            f"({named}); a classifier needs at least 2: add a class folder"
        )
    if config.pca_k is not None and config.pca_k >= max(training_files, 1):
        raise UsageError(
            f"--pca-k {config.pca_k} is not below the {training_files} labelled images that "
            f"PCA is fitted on: choose at most {max(training_files - 1, 1)}, or leave --pca-k "
            "out to choose k from --pca-variance"
        )


def require_output(config: Config, storage: Storage) -> str:
    if not config.output:
        raise UsageError("--output is required")
    if storage.has_children(config.output) and not (config.overwrite or config.incremental):
        if not storage.exists(paths.join(config.output, names.RUN_JSON)):
            raise UsageError(
                f"output {config.output} holds files but no {names.RUN_JSON} (a run that "
                "failed, or files of another tool); pass --overwrite to replace them"
            )
        if committed_manifest(config.output, storage).get(REFUSED):
            # Its run.json only accounts for the images of a refused run: nothing to keep.
            log.info("output %s holds a refused run; it is replaced", config.output)
            return config.output
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


CONTENT_ID = re.compile(r"^[0-9a-f]{64}$")


def require_erasure(config: Config) -> str:
    """`erase` names a run and the images to erase, by content id or path; the run's folder."""
    if not config.output:
        raise UsageError("--output is required (the --output folder of a run)")
    if not config.image_id and not config.path:
        raise UsageError("name the images to erase with --image-id ID or --path P (repeatable)")
    bad = [value for value in config.image_id if not CONTENT_ID.match(value.strip().lower())]
    if bad:
        raise UsageError(f"--image-id {bad[0]!r} is not a SHA-256 content id (64 hex digits)")
    return config.output.rstrip("/")


def read_run_document(run_uri: str, storage: Storage) -> dict[str, Any]:
    """run.json of an earlier `fruitlens run` (its --output folder)."""
    document = committed_manifest(run_uri, storage)
    if not document:
        raise UsageError(f"{run_uri} holds no {names.RUN_JSON}: pass the --output folder of a run")
    return document


@dataclass(frozen=True)
class FeaturesSource:
    """The stored features --features names: the run that made them and the dataset itself."""

    document: dict[str, Any]  # the run's run.json
    dataset: str  # the features dataset's URI


def require_features_run(config: Config, storage: Storage) -> FeaturesSource:
    """--features: a run's --output folder (its run.json names the current features version)
    or one of its features datasets (features/, features@N/)."""
    if not config.features:
        raise UsageError("--features is required (the --output folder of a run)")
    given = config.features.rstrip("/")
    if storage.exists(paths.join(given, names.RUN_JSON)):
        document = read_run_document(given, storage)
        return FeaturesSource(document, dataset_location(given, document, names.FEATURES))
    run, _, name = given.rpartition("/")
    if run and base_name(name) == names.FEATURES and storage.has_children(given):
        return FeaturesSource(read_run_document(run, storage), given)
    raise UsageError(
        f"{given} holds no {names.RUN_JSON} and is not the features/ dataset of a run: pass a "
        "run's --output folder or its features/ folder"
    )
