"""A hostile input through the real job, in-process (`cli.main`, one Spark session for the module):
2 classes, a file nested too deep, hidden folders, a 3 GiB file, an EPS drawing, fake secrets;
then evaluate, predict, tampered models and erasures on copied runs.
"""

from __future__ import annotations

import io
import json
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from support.cli import CliResult, invoke
from support.naming import CLASS_RULE

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SECRETS = {
    "flag": "FAKE-FLAG-SECRET-7731",
    "access key": "AKIAFAKEHARDEN00042",
    "environment": "FAKE-ENV-SECRET-5519",
}
HUGE = 3 * 1024**3  # over binaryFile's 2 GiB limit: reading its bytes would fail the run
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n"


def photo(colour: tuple[int, int, int], seed: int) -> bytes:
    noise = np.random.default_rng(seed).integers(-40, 40, (40, 40, 3))
    pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def hostile_tree(root: Path) -> Path:
    colours = {"Apple": (200, 40, 40), "Banana": (230, 220, 60)}
    for split, count in (("Training", 6), ("Test", 3)):
        for index, (label, colour) in enumerate(colours.items()):
            folder = root / split / label
            folder.mkdir(parents=True)
            for n in range(count):
                (folder / f"{n}.jpg").write_bytes(photo(colour, 100 * index + n + len(split)))
    deep = root / "Training" / "Apple" / "d0" / "d1"
    deep.mkdir(parents=True)
    (deep / "deep.jpg").write_bytes(photo((200, 40, 40), 999))
    for hidden in (".Hidden", "_Staging"):
        (root / "Training" / hidden).mkdir()
        (root / "Training" / hidden / "x.jpg").write_bytes(photo((0, 0, 255), 7))
    with (root / "Training" / "Apple" / "huge.jpg").open("wb") as sparse:
        sparse.truncate(HUGE)  # no disk used; its content is never to be read
    (root / "Training" / "Banana" / "drawing.eps").write_bytes(EPS)
    (root / "Test" / "Banana" / "notes.jpg").write_bytes(b"not a photo\n" * 20)
    return root


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def hostile_run(workdir: Path) -> tuple[Path, Path, CliResult]:
    source = hostile_tree(workdir / "images")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)  # a relative --output, as a user types it
        outcome = invoke(
            "run",
            "--input",
            str(source),
            "--output",
            "out/small",
            "--weights",
            "seeded:0",
            "--image-size",
            "32",
            "--cv-folds",
            "2",
            "--master",
            "local[2]",
            "--spark-conf",
            f"spark.hadoop.fs.s3a.secret.key={SECRETS['flag']}",
            "--spark-conf",
            f"spark.hadoop.fs.s3a.access.key={SECRETS['access key']}",
            env={"AWS_SECRET_ACCESS_KEY": SECRETS["environment"]},
        )
    assert outcome.code == 0, outcome.stderr[-3000:]
    return source, workdir / "out" / "small", outcome


def run_json(output: Path) -> dict:
    return json.loads((output / "run.json").read_text())


def test_a_two_class_run_scores_with_a_top_2(hostile_run):
    _, output, outcome = hostile_run
    document = run_json(output)
    assert document["classifier"]["trained"] is True
    assert "classifier logreg" in outcome.stdout
    predictions = pd.read_parquet(output / document["outputs"]["predictions"])
    assert {len(top) for top in predictions["top3"]} == {2}


def test_every_hostile_file_is_accounted_with_its_reason(hostile_run):
    _, output, outcome = hostile_run
    images = run_json(output)["images"]
    assert images["rejected_by_reason"] == {
        "file_too_large": 1,
        "not_an_image": 1,
        "too_deep": 1,
        "unsupported_format": 1,
    }
    assert images["processed"] == 18 and images["listed"] == 22
    assert run_json(output)["listing"]["hidden_files_skipped"] == 2
    assert "not listed (hidden name, '.' or '_'): 2" in outcome.stdout
    rejected = pd.read_parquet(output / run_json(output)["outputs"]["rejected"])
    by_reason = dict(zip(rejected["reason"], rejected["detail"], strict=True))
    assert by_reason["file_too_large"] == f"{HUGE} bytes exceeds max_file_bytes=50000000"
    assert not any(" at 0x" in detail for detail in rejected["detail"])
    deep = rejected[rejected["reason"] == "too_deep"]["path"].iloc[0]
    assert deep.endswith("Training/Apple/d0/d1/deep.jpg")  # rejected, not labelled d1


def test_no_secret_reaches_any_output(hostile_run):
    _, output, _ = hostile_run
    files = [path for path in output.rglob("*") if path.is_file()]
    assert len(files) > 20
    for path in files:
        data = path.read_bytes()
        for channel, secret in SECRETS.items():
            assert secret.encode() not in data, f"{channel} secret in {path}"
    assert "spark.hadoop.fs.s3a.secret.key=[REDACTED]" in run_json(output)["config"]["spark_conf"]


def test_local_outputs_are_readable_by_their_owner_only(hostile_run):
    _, output, _ = hostile_run
    for path in [output, *output.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_audit_says_no_sse_for_a_local_output(hostile_run):
    audit = run_json(hostile_run[1])["audit"]
    assert audit["sse"] is None and audit["local_umask"] == "077"


def test_the_spark_ui_listens_on_loopback_only(spark):
    port = int(spark.sparkContext.uiWebUrl.rsplit(":", 1)[1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                listening.append(address)
    assert listening, port
    # 127.0.0.1, ::1, ::ffff:127.0.0.1 as /proc/net/tcp{,6} write them; never 0.0.0.0 or ::
    loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
    assert set(listening) <= loopback, listening


def test_the_driver_jvm_has_the_job_s_options_and_the_user_s(spark):
    """The job's own options (its log4j2 file) sit in spark.driver.defaultJavaOptions, so that
    options a user adds (this session's extraJavaOptions) do not replace them."""
    conf = spark.sparkContext.getConf()
    runtime = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    arguments = list(runtime.getInputArguments())
    assert set(conf.get("spark.driver.defaultJavaOptions").split()) <= set(arguments)
    # Spark appends its own --add-opens list to extraJavaOptions; the session's are the -XX ones.
    added = set(conf.get("spark.driver.extraJavaOptions").split())
    assert {option for option in added if option.startswith("-XX:")} <= set(arguments)
    assert any(option.startswith("-XX:") for option in added)
    assert any(option.startswith("-Dlog4j2.configurationFile=") for option in arguments)


def test_evaluate_and_predict_take_a_features_folder_and_rank_two(hostile_run, workdir):
    source, output, _ = hostile_run
    evaluated = invoke(
        "evaluate",
        "--model",
        str(output),
        "--features",
        str(output / "features"),  # the README's "or its features/ Parquet"
        "--output",
        str(workdir / "eval"),
        "--no-plots",
    )
    assert evaluated.code == 0, evaluated.stderr[-2000:]
    assert 0 <= run_json(workdir / "eval")["classifier"]["top3_accuracy"] <= 1
    predicted = invoke(
        "predict",
        "--model",
        str(output),
        "--input",
        str(source / "Test"),
        "--output",
        str(workdir / "predictions"),
        "--weights",
        "seeded:0",
    )
    assert predicted.code == 0, predicted.stderr[-2000:]
    header = (workdir / "predictions" / "predictions.csv").read_text().splitlines()[0]
    assert header.endswith("top1_label,top1_probability,top2_label,top2_probability")


def copy_of(output: Path, workdir: Path, name: str) -> Path:
    copy = workdir / name
    shutil.copytree(output, copy)
    return copy


def test_a_tampered_model_is_refused(hostile_run, workdir):
    source, output, _ = hostile_run
    model = copy_of(output, workdir, "tampered")
    card = json.loads((model / "model.json").read_text())
    data = next(p for p in (model / card["model_dir"]).rglob("*.parquet") if "stages" in str(p))
    data.write_bytes(data.read_bytes()[:-1] + b"\x00")
    refused = invoke(
        "predict", "--model", str(model), "--input", str(source / "Test"),
        "--output", str(workdir / "never"), "--weights", "seeded:0",
    )  # fmt: skip
    assert refused.code == 2 and "altered" in refused.stderr, refused.stderr
    card["model_dir"] = "../small/" + card["model_dir"]
    (model / "model.json").write_text(json.dumps(card))
    refused = invoke(
        "predict", "--model", str(model), "--input", str(source / "Test"),
        "--output", str(workdir / "never"), "--weights", "seeded:0",
    )  # fmt: skip
    assert refused.code == 2 and "not a path elsewhere" in refused.stderr, refused.stderr
    assert not (workdir / "never").exists()


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_erase_acts_on_the_run_named_not_the_one_it_was_copied_from(
    hostile_run, workdir, monkeypatch
):
    _, output, _ = hostile_run
    original = tree_bytes(output)
    copy = copy_of(output, workdir, "copy")
    victim = pd.read_parquet(copy / run_json(copy)["outputs"]["features"])["image_id"].iloc[0]
    monkeypatch.chdir("/")  # `erase` from another directory resolves nothing against it
    erased = invoke("erase", "--output", str(copy), "--image-id", victim)
    assert erased.code == 0, erased.stderr[-2000:]
    report = json.loads(erased.stdout)
    assert report["rows_erased"]["features"] == 1 and report["found"] is True
    assert tree_bytes(output) == original  # the original run is untouched
    document = run_json(copy)
    for name in ("features", "pca", "predictions"):
        frame = pd.read_parquet(copy / document["outputs"][name])
        assert victim not in set(frame["image_id"]), name
    assert victim not in (copy / "resultats_pca.csv").read_text()
    assert all(not Path(stored).is_absolute() for stored in document["outputs"].values())


def test_erase_refuses_a_run_whose_outputs_are_gone(hostile_run, workdir):
    _, output, _ = hostile_run
    copy = copy_of(output, workdir, "gutted")
    for name in ("features", "pca", "rejected", "predictions"):
        shutil.rmtree(copy / run_json(copy)["outputs"][name])
    refused = invoke("erase", "--output", str(copy), "--image-id", "a" * 64)
    assert refused.code == 2 and "nothing was erased" in refused.stderr, refused.stderr


def test_erase_of_an_unknown_image_says_it_found_nothing(hostile_run, workdir):
    copy = copy_of(hostile_run[1], workdir, "unknown")
    erased = invoke("erase", "--output", str(copy), "--image-id", "b" * 64)
    assert erased.code == 0
    report = json.loads(erased.stdout)
    assert report["found"] is False and report["no_op"] is True


def test_spark_applies_the_same_class_rule_as_the_listing(spark):
    from fruitlens.pipeline import images

    root = "file:/data/in"
    files = spark.createDataFrame(
        [(f"{root}/{relative}", 1, bytearray(b"x")) for relative, _ in CLASS_RULE],
        "path string, length long, content binary",
    )
    named = images.with_names(files, root).collect()
    found = {row["rel_path"]: (row["label"], row["split"], row["refusal"]) for row in named}
    assert found == dict(CLASS_RULE)


def test_a_one_image_run_says_what_happened_and_blocks_no_rerun(hostile_run, workdir):
    source = workdir / "one-good"
    (source / "Apple").mkdir(parents=True)
    (source / "Apple" / "1.jpg").write_bytes(photo((200, 40, 40), 1))
    (source / "Apple" / "2.jpg").write_bytes(b"not a photo\n" * 20)
    output = workdir / "one-good-out"
    flags = ["--weights", "seeded:0", "--image-size", "32", "--no-plots"]
    refused = invoke("run", "--input", str(source), "--output", str(output), *flags)
    assert refused.code == 2
    assert "1 image(s) processed and 1 rejected" in refused.stderr, refused.stderr
    assert run_json(output)["refused"]
    (source / "Apple" / "2.jpg").write_bytes(photo((190, 50, 40), 2))
    rerun = invoke("run", "--input", str(source), "--output", str(output), *flags)
    assert rerun.code == 0, rerun.stderr[-2000:]  # no --overwrite needed over a refused run
    assert run_json(output)["images"]["processed"] == 2 and "refused" not in run_json(output)


@pytest.mark.parametrize("classes", [2, 3])
def test_top_k_is_never_more_than_the_classes(spark, classes):
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import StringType, StructField, StructType

    from fruitlens.pipeline import classify

    generator = np.random.default_rng(classes)
    rows = [
        (f"{label}-{n}", f"file:/x/{label}/{n}.jpg", f"C{label}", "Training",
         Vectors.dense(generator.normal(label * 3.0, 1.0, 8)))
        for label in range(classes)
        for n in range(6)
    ]  # fmt: skip
    text = [StructField(name, StringType()) for name in ("image_id", "path", "label", "split")]
    schema = StructType([*text, StructField("features", VectorUDT())])
    features = spark.createDataFrame(rows, schema)
    model, _ = classify.train(features, 2, "logreg", 2, False, 0)
    scored = classify.score(model, features)
    assert {len(row["top3"]) for row in scored.select("top3").collect()} == {min(3, classes)}
    flat = classify.flat_predictions(scored, classes).columns
    assert flat[-2:] == [f"top{min(3, classes)}_label", f"top{min(3, classes)}_probability"]
