"""Issue 7 on local folders: committed outputs, a killed run, a killed worker, hostile input.

Four fruitlens processes: a first run, a run SIGKILLed while it writes, the rerun after it, one
of whose Python workers is killed, and a run stopped by Ctrl-C while it featurizes.

Tiny inputs (3 classes x 4 images, flat, no classifier) keep each run short; `make chaos`
(mk/chaos.mk) does the same at 20 000+ images.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fruitlens import session
from support import jvm
from support.cli import run_cli
from support.frames import rows
from support.images import rgb_jpeg
from support.paths import REPO

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# One task slot: a second Python worker would import TensorFlow and build VGG16 again (about
# 7 CPU-s) for 12 images. Every run here has the same slots, hence the same partitions:
# TensorFlow's features depend on the batch a partition makes, and reruns must match bit for bit.
TINY_FLAGS = ["--weights", "seeded:0", "--pca-k", "2", "--no-plots", "--master", "local[1]"]
DATASETS = ("features", "pca", "rejected")


# --- hostile input ---------------------------------------------------------------------------
HOSTILE_NAMES = {
    'Quotes/it\'s "ripe".jpg': (10, 20, 30),
    "Quotes/back\\slash,comma;semi.jpg": (11, 21, 31),
    "New Lines/line\nbreak.jpg": (20, 30, 40),
    "Ünïcödé 🍎/pêche ß 桃.jpg": (30, 40, 50),
    "Long/" + "x" * 240 + ".jpg": (40, 50, 60),
}
# A 1 200-character path nests below its class folder: rejected as too_deep (the class rule),
# never labelled with its parent folder's name.
DEEP = "/".join(["Deep"] + ["d" * 200] * 6) + "/deep.jpg"


@pytest.fixture(scope="module")
def tiny_input(fruits360: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 4 Training images, flat (<Class>/<file>): featurize + PCA, no classifier;
    plus hostile names and a folder link (no extra Spark run for them)."""
    root = tmp_path_factory.mktemp("tiny") / "in"
    for class_dir in sorted(p for p in (fruits360 / "Training").iterdir() if p.is_dir())[:3]:
        (root / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.iterdir())[:4]:
            shutil.copyfile(image, root / class_dir.name / image.name)
    for relative, colour in {**HOSTILE_NAMES, DEEP: (50, 60, 70)}.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rgb_jpeg(colour))
    # A folder link that is not a loop is followed like a folder.
    (root.parent / "elsewhere").mkdir()
    (root.parent / "elsewhere" / "linked.jpg").write_bytes(rgb_jpeg((60, 70, 80)))
    (root / "Linked").symlink_to(root.parent / "elsewhere", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def first_run(tiny_input: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("first") / "out"
    result = run_cli("run", "--input", str(tiny_input), "--output", str(output), *TINY_FLAGS)
    assert result.code == 0, result.stderr[-3000:]
    return output


def run_json(output: Path) -> dict:
    return json.loads((output / "run.json").read_text())


def dataset(output: Path, name: str) -> pd.DataFrame:
    """A dataset as readers must find it: through run.json's `outputs`."""
    location = output / run_json(output)["outputs"][name]  # relative to the run
    return pd.read_parquet(location).sort_values("image_id").reset_index(drop=True)


def vectors(frame: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    return {
        row["image_id"]: np.asarray(row[column]["values"], dtype=np.float64)
        for _, row in frame.iterrows()
    }


# Spark's PCA sums partial covariances in task-completion order: the last bits may differ.
PCA_ATOL = 1e-9


def assert_same_rows(a: Path, b: Path) -> None:
    """Same ids, paths, labels and features (bit for bit); PCA coordinates to 1e-9."""
    for name in DATASETS:
        left, right = dataset(a, name), dataset(b, name)
        assert list(left["image_id"]) == list(right["image_id"]), name
        assert list(left["path"]) == list(right["path"]), name
        if "label" in left:
            assert list(left["label"]) == list(right["label"]), name
    left, right = (
        vectors(dataset(a, "features"), "features"),
        vectors(dataset(b, "features"), "features"),
    )
    assert left.keys() == right.keys()
    for image_id, values in left.items():
        assert np.array_equal(values, right[image_id]), image_id
    left, right = vectors(dataset(a, "pca"), "pca"), vectors(dataset(b, "pca"), "pca")
    for image_id, values in left.items():
        assert np.allclose(values, right[image_id], rtol=0, atol=PCA_ATOL), image_id


def assert_same_csv(a: Path, b: Path) -> None:
    left, right = (
        pd.read_csv(path / "resultats_pca.csv").sort_values(["image_id", "path"], ignore_index=True)
        for path in (a, b)
    )
    assert list(left.columns) == list(right.columns)
    numbers = [column for column in left.columns if column.startswith("pc_")]
    others = [column for column in left.columns if column not in numbers]
    assert left[others].equals(right[others])
    assert np.allclose(left[numbers], right[numbers], rtol=0, atol=PCA_ATOL)


def no_debris(output: Path) -> list[str]:
    """Anything a half-finished write leaves: Spark's _temporary, partial files."""
    return [
        str(path.relative_to(output))
        for path in output.rglob("*")
        if path.name.startswith(("_temporary", "__magic", ".spark-staging"))
        or path.name.endswith(".partial")
    ]


def test_fresh_output_keeps_the_plain_names(first_run: Path):
    outputs = run_json(first_run)["outputs"]
    assert {name: outputs[name] for name in DATASETS} == {name: name for name in DATASETS}
    assert "plots" not in outputs  # --no-plots: run.json names only what exists
    assert sorted(p.name for p in first_run.iterdir()) == [
        "features",
        "pca",
        "rejected",
        "report.html",
        "resultats_pca.csv",
        "run.json",
    ]


def test_killed_run_leaves_the_previous_output_and_the_rerun_survives_a_killed_worker(
    first_run: Path, tiny_input: Path, tmp_path: Path
):
    output = tmp_path / "out"
    shutil.copytree(first_run, output)
    # The copy's run.json names its datasets relative to itself: the copy's own.
    committed = (output / "run.json").read_bytes()
    before = {name: dataset(output, name) for name in DATASETS}

    # 1. a second run is SIGKILLed (driver, JVM, workers) as soon as it starts writing.
    process = start_run_in_its_own_group(tiny_input, output, subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        while not (output / "features@2").exists():
            assert process.poll() is None, "the run ended before it wrote anything"
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.05)
        # Its Spark scratch folder (derived rows, copies of the jars and weights), checked while
        # the run lives: once it is killed, any local session starting elsewhere may remove it.
        scratch = session.scratch_dir(process.pid)
        assert scratch.is_dir()
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert (output / "features@2").exists()  # it had begun writing the new version

    # Readers see the previous run, whole: same manifest, same rows.
    assert (output / "run.json").read_bytes() == committed
    for name in DATASETS:
        assert rows(dataset(output, name)) == rows(before[name]), name

    # 2. the next run (--overwrite) completes, though one of its Python workers is killed
    # mid-task, and nothing of the killed run remains.
    marker = tmp_path / "worker-killed"
    result = run_with_a_worker_killed(tiny_input, output, marker, "--overwrite")
    assert result.code == 0, result.stderr[-3000:]
    assert marker.exists(), "the fault hook never ran: no worker was killed"
    assert run_json(output)["images"] == run_json(first_run)["images"]
    outputs = run_json(output)["outputs"]
    assert {name: outputs[name] for name in DATASETS} == {name: f"{name}@2" for name in DATASETS}
    assert sorted(p.name for p in output.iterdir()) == sorted(
        ["run.json", "report.html", "resultats_pca.csv", *(f"{name}@2" for name in DATASETS)]
    )
    assert no_debris(output) == []
    assert not scratch.exists()  # removed by the next local session
    # 3. same input twice: identical rows (ids, paths, labels, features; PCA to 1e-9).
    assert_same_rows(first_run, output)
    assert_same_csv(first_run, output)


def test_ctrl_c_stops_a_run_with_one_line_and_exit_130_leaving_the_previous_output(
    first_run: Path, tiny_input: Path, tmp_path: Path
):
    """SIGINT to the run's process group, as a terminal's Ctrl-C sends it, while it featurizes:
    Spark is stopped (not only pyspark's job cancel, which fails on the busy py4j connection)."""
    output = tmp_path / "out"
    shutil.copytree(first_run, output)
    committed = (output / "run.json").read_bytes()
    process = start_run_in_its_own_group(tiny_input, output, subprocess.PIPE)
    assert process.stderr is not None
    try:
        before = "".join(iter_until(process.stderr, "stage featurize: started"))
        assert "stage featurize: started" in before, before[-3000:]
        os.killpg(process.pid, signal.SIGINT)
        _, after = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, after[-3000:]
    assert after.splitlines()[-1] == "fruitlens run: interrupted"
    assert "Traceback" not in before + after and "failed" not in after
    assert (output / "run.json").read_bytes() == committed
    # Spark's JVM and the Python daemon end with the command.
    deadline = time.monotonic() + 60
    while process_group_alive(process.pid):
        assert time.monotonic() < deadline, "processes of the interrupted run are still alive"
        time.sleep(0.2)


def start_run_in_its_own_group(source: Path, output: Path, stderr: int) -> subprocess.Popen[str]:
    """`run --overwrite` of `source` into `output` as a process group of its own, as a terminal
    starts a job: a signal sent to the group reaches the driver, its JVM and its Python workers."""
    command = [sys.executable, "-m", "fruitlens", "run", "--input", str(source)]
    command += ["--output", str(output), "--overwrite", *TINY_FLAGS]
    return subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )


def iter_until(stream: Iterable[str], marker: str) -> Iterator[str]:
    """The lines of `stream` up to and including the first that holds `marker`."""
    for line in stream:
        yield line
        if marker in line:
            return


def process_group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def run_with_a_worker_killed(source: Path, output: Path, marker: Path, *flags: str):
    """`run` whose first Python worker to start a task is killed (support/faults): Spark must
    retry the task and the run change nothing."""
    faults_dir = str(REPO / "tests" / "support" / "faults")
    return run_cli(
        "run",
        "--input",
        str(source),
        "--output",
        str(output),
        *flags,
        *TINY_FLAGS[:-2],
        # local[N,F]: N threads, F attempts per task (plain local[N] never retries a task);
        # N as in TINY_FLAGS.
        "--master",
        "local[1,4]",
        "--spark-conf",
        "spark.python.worker.module=pyspark_fault_worker",
        *jvm.DRIVER_FLAGS,
        env={
            "FRUITLENS_FAULT_MARKER": str(marker),
            "PYTHONPATH": os.pathsep.join([faults_dir, os.environ.get("PYTHONPATH", "")]),
        },
    )


def test_hostile_file_names_are_featurized_with_their_names_intact(first_run: Path):
    output = first_run
    features = dataset(output, "features")
    names = {path.rsplit("/", 1)[-1] for path in features["path"]}
    for relative in HOSTILE_NAMES:
        assert relative.rsplit("/", 1)[-1] in names, relative
    labels = set(features["label"])
    assert {"Quotes", "New Lines", "Ünïcödé 🍎", "Long"} <= labels and "d" * 200 not in labels
    rejected = dataset(output, "rejected")
    assert list(rejected["reason"]) == ["too_deep"] and rejected["path"][0].endswith(DEEP)


def test_hostile_names_survive_the_client_csv(first_run: Path):
    import csv

    output = first_run
    with (output / "resultats_pca.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == run_json(output)["images"]["processed"]
    assert {"Quotes", "New Lines", "Ünïcödé 🍎"} <= {row["label"] for row in rows}


def test_a_folder_link_that_is_no_loop_is_followed(first_run: Path):
    paths = list(dataset(first_run, "features")["path"])
    assert [path for path in paths if "/Linked/" in path] == [
        path for path in paths if path.endswith("/Linked/linked.jpg")
    ]
    assert run_json(first_run)["images"] == {
        "listed": 12 + len(HOSTILE_NAMES) + 2,
        "processed": 12 + len(HOSTILE_NAMES) + 1,
        "rejected": 1,
        "rejected_by_reason": {"too_deep": 1},
    }
