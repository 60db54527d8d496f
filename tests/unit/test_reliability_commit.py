"""The output commit (OutputCommit) on its own: versions, cleanup, what it never touches.

No Spark here: `write_parquet` is replaced by a function that makes a folder with one file, so
these checks take milliseconds; tests/e2e/test_reliability_local.py and _s3.py drive the real job.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fruitlens.config import Config
from fruitlens.outputs import commit as commit_module
from fruitlens.outputs import names
from fruitlens.outputs.commit import OutputCommit
from fruitlens.outputs.storage import Storage


@pytest.fixture(autouse=True)
def folder_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_parquet(frame: str, uri: str) -> None:
        Path(uri).mkdir(parents=True, exist_ok=True)
        (Path(uri) / "part-0.parquet").write_text(frame)

    monkeypatch.setattr(commit_module, "write_parquet", fake_parquet)


def commit_run(output: Path, tag: str, command: str = "run", names=("features", "pca")) -> dict:
    commit = OutputCommit.begin(str(output), Storage(Config()))
    for name in names:
        commit.parquet(tag, name)
    commit.put_bytes("resultats_pca.csv", tag.encode(), "text/csv")
    return commit.finish({"command": command}, [*names, "resultats_pca.csv"])


def manifest(output: Path) -> dict:
    return json.loads((output / "run.json").read_text())


def test_versions_follow_run_json_and_replaced_versions_go(tmp_path: Path):
    output = tmp_path / "out"
    commit_run(output, "first")
    assert manifest(output)["outputs"]["features"] == "features"  # relative to the run
    commit_run(output, "second")
    commit_run(output, "third")
    outputs = manifest(output)["outputs"]
    assert outputs["features"] == "features@3" and outputs["pca"] == "pca@3"
    assert sorted(p.name for p in output.iterdir()) == [
        "features@3",
        "pca@3",
        "resultats_pca.csv",
        "run.json",
    ]
    assert (output / "features@3" / "part-0.parquet").read_text() == "third"


def test_the_next_version_comes_after_the_highest_one_named(tmp_path: Path):
    output = tmp_path / "out"
    commit_run(output, "first")
    document = manifest(output)  # as `fruitlens erase` leaves it: features@4, pca plain
    (output / "features").rename(output / "features@4")
    document["outputs"]["features"] = "features@4"
    (output / "run.json").write_text(json.dumps(document))
    commit_run(output, "second")
    assert manifest(output)["outputs"]["features"] == "features@5"
    assert manifest(output)["outputs"]["pca"] == "pca@5"
    assert not (output / "features@4").exists() and not (output / "pca").exists()


def test_a_failed_runs_leftovers_go_and_nothing_else(tmp_path: Path):
    output = tmp_path / "out"
    commit_run(output, "first")
    # What a killed run leaves, and what is not ours at all.
    (output / "features@2" / "_temporary" / "0").mkdir(parents=True)
    (output / "pca@2").mkdir()
    (output / "_temporary").mkdir()
    (output / ".run.json.4242.partial").write_text("{")
    (output / "erasure-log.jsonl").write_text("{}\n")
    (output / "notes.txt").write_text("mine")
    (output / "model.json").write_text("{}")  # a failed run trained; the committed one did not
    committed = (output / "run.json").read_bytes()
    removed = OutputCommit.begin(str(output), Storage(Config())).remove_leftovers()
    assert removed == []  # begin() already removed them; a second pass finds nothing
    assert (output / "run.json").read_bytes() == committed
    assert sorted(p.name for p in output.iterdir()) == [
        "erasure-log.jsonl",
        "features",
        "notes.txt",
        "pca",
        "resultats_pca.csv",
        "run.json",
    ]


def test_after_a_failed_first_run_overwrite_starts_clean(tmp_path: Path):
    output = tmp_path / "out"
    (output / "features" / "_temporary").mkdir(parents=True)
    (output / "model").mkdir()
    (output / "model.json").write_text("{}")
    commit_run(output, "first")
    assert sorted(p.name for p in output.iterdir()) == [
        "features",
        "pca",
        "resultats_pca.csv",
        "run.json",
    ]
    assert not (output / "features" / "_temporary").exists()


def test_another_commands_manifest_keeps_what_it_names(tmp_path: Path):
    output = tmp_path / "out"
    commit_run(output, "first")
    commit_run(output, "eval", command="evaluate", names=("predictions",))
    outputs = manifest(output)["outputs"]
    assert outputs["features"] == "features" and (output / "features").is_dir()
    assert outputs["predictions"] == "predictions@2"


def test_folders_outside_the_output_are_never_deleted(tmp_path: Path):
    elsewhere, output = tmp_path / "elsewhere", tmp_path / "out"
    commit_run(elsewhere, "first")
    output.mkdir()
    (output / "run.json").write_text((elsewhere / "run.json").read_text())  # a copied manifest
    commit_run(output, "second")
    assert (elsewhere / "features" / "part-0.parquet").read_text() == "first"
    assert manifest(output)["outputs"]["features"] == "features@2"


def test_a_manifest_from_before_versioning_keeps_its_outputs(tmp_path: Path):
    output = tmp_path / "out"
    for name in ("features", "model", "training_image_ids"):
        (output / name).mkdir(parents=True)
    names_model = {"features": f"{output}/features", "model": f"{output}/model"}
    (output / "run.json").write_text(json.dumps({"command": "run", "outputs": names_model}))
    OutputCommit.begin(str(output), Storage(Config()))
    assert (output / "training_image_ids").is_dir()  # beside model/, never listed before
    (output / "run.json").write_text(json.dumps({"command": "run"}))  # no outputs map at all
    commit = OutputCommit.begin(str(output), Storage(Config()))
    assert commit.version == 2 and (output / "features").is_dir() and (output / "model").is_dir()


def test_run_json_names_the_digest_of_each_single_object(tmp_path: Path):
    output = tmp_path / "out"
    commit_run(output, "first")
    csv = (output / "resultats_pca.csv").read_bytes()
    digests = manifest(output)[names.FILES_SHA256]
    assert digests == {"resultats_pca.csv": hashlib.sha256(csv).hexdigest()}
    # A run that keeps the committed outputs keeps their digests too.
    commit = OutputCommit.begin(str(output), Storage(Config()))
    commit.keep_previous()
    commit.finish({"command": "run"}, [])
    assert manifest(output)[names.FILES_SHA256] == digests
    # A replaced CSV no longer matches: a reader can tell it is not the committed run's.
    (output / "resultats_pca.csv").write_text("a later, uncommitted run")
    replaced = hashlib.sha256((output / "resultats_pca.csv").read_bytes()).hexdigest()
    assert replaced != manifest(output)[names.FILES_SHA256]["resultats_pca.csv"]
