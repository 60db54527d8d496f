"""`fruitlens erase`: the right to erasure over a run's outputs, with no half-erased state.

Every derived row of the named images is removed from the Parquet datasets (features/, pca/,
rejected/, predictions/) and the CSVs (resultats_pca.csv, predictions.csv), through the same
commit as every writer (outputs/commit.py), so a reader never sees a half-erased state:

1. each dataset that holds an erased row is written, filtered, to a NEW versioned prefix
   (features@2/, then features@3/ ...), and checked by counting;
2. the CSVs are replaced, each in one PUT;
3. run.json's `outputs` map is repointed to the new versions in one PUT (readers such as
   `fruitlens train --features` find the datasets through that map): the commit point;
4. the old versions are deleted.

Then the source objects are deleted when --delete-source is given, an entry is appended to
`erasure-log.jsonl` (who, when, which content ids, how many rows per dataset; never a path),
and the report says whether the trained model saw any erased image and must be retrained.
Erasing the same ids again finds no row: every count is 0 and nothing is rewritten.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fruitlens import paths
from fruitlens.commands.preflight import read_run_document, require_erasure
from fruitlens.config import Config
from fruitlens.errors import UsageError
from fruitlens.outputs import erasure, names, report_page
from fruitlens.outputs.commit import OutputCommit
from fruitlens.outputs.storage import Storage

log = logging.getLogger(__name__)


def erase_command(config: Config) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from fruitlens import session
    from fruitlens.outputs.report import caller_identity
    from fruitlens.pipeline import classify, images

    storage = Storage(config)
    output = require_erasure(config)
    document = read_run_document(output, storage)
    outputs, located, missing = erasure.locate(output, document, storage)
    if not located:
        raise UsageError(
            f"none of the datasets of {output}/{names.RUN_JSON} ({', '.join(names.DATASETS)}) "
            f"can be found under {output}: nothing was erased; check --output"
        )
    if missing:
        log.warning("erase: %s named by %s/run.json cannot be found", ", ".join(missing), output)

    spark = session.start_session(config, "fruitlens-erase")
    commit = OutputCommit.begin(output, storage)
    frames = {name: spark.read.parquet(uri) for name, uri in located.items()}

    # 1. which content ids: given, plus those of the given paths (stored path or current bytes)
    wanted_paths = [images.normalize_path(p) for p in config.path]
    ids = erasure.content_ids(frames, storage, config.image_id, config.path, wanted_paths)
    id_list = sorted(ids)
    matches = F.col("image_id").isin(id_list)

    # 2. what the model saw, decided before anything changes
    features = frames.get(names.FEATURES)
    model = classify.model_verdict(spark, storage, output, outputs, features, id_list)

    # 3. sources to delete: stored paths of the erased rows, plus the paths given
    sources: set[str] = set()
    if config.delete_source:
        sources.update(wanted_paths)
        sources.update(erasure.stored_sources(frames, matches))
        if id_list and document.get("config", {}).get("pseudonymize") and document.get("input"):
            sources.update(images.paths_with_ids(spark, str(document["input"]), id_list))

    # 4. new versions of the datasets that hold erased rows, through the commit
    commit.keep_previous()
    counts, rejected_reasons, rewritten = erasure.rewrite_datasets(commit, frames, id_list)

    # 5. the CSVs filtered to local files, then one commit: CSVs, run.json, old versions gone
    with tempfile.TemporaryDirectory(prefix="fruitlens-erase-") as workdir:
        csv_erased = erasure.rewrite_csvs(commit, storage, outputs, ids, counts, Path(workdir))
        if rewritten or csv_erased:
            erasure.adjust_counts(document, counts, rejected_reasons)
            # The outputs no longer match the input they were made from: an --incremental rerun
            # must recompute them rather than keep them as they are.
            document.pop("fingerprint", None)
            document["output"] = output  # a copied run now names itself
            report_page.recommit_after_erasure(document, commit, storage)
            commit.finish(document, [])

    deleted = sum(storage.delete_object(uri) for uri in sorted(sources))
    entry = {
        "at": datetime.now(timezone.utc).isoformat(),
        "who": caller_identity(config),
        "image_ids": id_list,
        "requested": {"image_ids": len(config.image_id), "paths": len(config.path)},
        "rows_erased": counts,
        "datasets_rewritten": sorted(rewritten),
        "sources_deleted": deleted,
        "model": model,
        # PCA basis, plots and evaluation.json are aggregates computed with these images.
        "aggregates_recompute_recommended": counts.get(names.FEATURES, 0) > 0,
        "no_op": not (rewritten or csv_erased or deleted),
        # Outputs run.json names that are gone: their rows (if any) could not be erased here.
        "missing_outputs": missing,
        "found": bool(sum(counts.values())),
    }
    erasure.append_log(storage, paths.join(output, names.ERASURE_LOG), entry)
    log.info("erase: %d ids, rows erased %s, %d sources deleted", len(id_list), counts, deleted)
    if not entry["found"]:
        log.warning(
            "erase: no row of the %d image(s) requested is in the outputs of %s (already "
            "erased, or never part of this run)",
            len(id_list) or len(config.path),
            output,
        )
    return {
        "command": "erase",
        "output": output,
        "erasure_log": paths.join(output, names.ERASURE_LOG),
        **{key: value for key, value in entry.items() if key != "who"},
    }
