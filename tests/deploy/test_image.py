"""The container image (docker/Dockerfile): lint, the facts it must keep, a real build and run.

The fast tests read the Dockerfile and its inputs. The slow ones (FRUITLENS_IMAGE_TEST=1, which
`make image-test` sets) build the real docker/Dockerfile with podman on a locally debootstrapped
stand-in for apache/spark (no registry is reachable here), then run the image's entry point:
`spark-submit --master local[2] local:///opt/fruitlens/main.py run ...` against a moto S3 server
on the host. A cold build costs several minutes on 2 cores, hence the opt-in.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
JARS_LOCK = ROOT / "app" / "fruitlens" / "data" / "jars.lock"
CONSTRAINTS = DOCKER / "constraints.txt"
DOCKERIGNORE = ROOT / ".dockerignore"
WEIGHTS_NAME = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
OCI_LABELS = {
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.licenses",
    "org.opencontainers.image.source",
    "org.opencontainers.image.base.name",
}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|CREDENTIAL|PRIVATE", re.I)
SECRET_VALUE = re.compile(
    r"AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY|aws_secret_access_key\s*=",
    re.I,
)


# --- reading the Dockerfile ------------------------------------------------------------------


def instructions(text: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text() if text is None else text
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, rest = full.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last_from:]


def arg_default(name: str) -> str:
    for keyword, rest in instructions():
        if keyword == "ARG" and rest.startswith(f"{name}="):
            return rest.split("=", 1)[1].strip().strip('"')
    raise AssertionError(f"no ARG {name}=... default in {DOCKERFILE}")


def key_values(rest: str) -> dict[str, str]:
    """ENV/LABEL arguments in key=value form (values may be double-quoted)."""
    pairs = re.findall(r'([A-Za-z0-9_.\-]+)=("(?:[^"\\]|\\.)*"|\S*)', rest)
    return {key: value.strip('"') for key, value in pairs}


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword == "ENV":
            env.update(key_values(rest))
    return env


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned_spark_version() -> str:
    for spec in pyproject()["project"]["dependencies"]:
        match = re.fullmatch(r"pyspark==(\d+\.\d+\.\d+)", spec.replace(" ", ""))
        if match:
            return match.group(1)
    raise AssertionError("pyproject.toml does not pin pyspark==X.Y.Z")


def installed_spark_version() -> str | None:
    try:
        import pyspark
    except ImportError:
        return None
    return pyspark.__version__


def jar_lock() -> list[tuple[str, str]]:
    entries = []
    for line in JARS_LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            sha256, path = line.split()
            entries.append((sha256, path))
    return entries


def load_docker_module(name: str):
    spec = importlib.util.spec_from_file_location(f"docker_{name}", DOCKER / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- lint (hadolint itself runs in `make lint`) ---------------------------------------------


def test_every_hadolint_ignore_carries_a_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[number - 1].strip() if number else ""
            assert before.startswith("#") and "hadolint" not in before, (
                f"line {number + 1}: `{line.strip()}` needs a comment above it saying why"
            )


# --- facts the Dockerfile must keep -----------------------------------------------------------


def test_base_image_is_the_official_spark_python_image_of_pyspark_version() -> None:
    base = arg_default("BASE_IMAGE")
    match = re.fullmatch(r"apache/spark:(\d+\.\d+\.\d+)-scala2\.13-java17-python3-ubuntu", base)
    assert match, f"BASE_IMAGE {base!r} is not a pinned apache/spark python3 variant tag"
    assert match.group(1) == pinned_spark_version()
    installed = installed_spark_version()
    if installed is not None:
        assert match.group(1) == installed, "image Spark and pyspark.__version__ differ"
    assert instructions()[0] == ("ARG", f"BASE_IMAGE={base}")
    assert all(
        rest.startswith(("${BASE_IMAGE}", "python-deps"))
        for k, rest in instructions()
        if k == "FROM"
    )


def test_runs_as_uid_185_and_keeps_the_base_entrypoint() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users[-1] == "185"
    keywords = {keyword for keyword, _ in instructions()}
    # The Spark Operator calls the base image's /opt/entrypoint.sh with driver/executor.
    assert not keywords & {"ENTRYPOINT", "CMD"}
    assert "HEALTHCHECK" not in keywords  # batch image: see the comment in the Dockerfile
    assert "Batch image" in DOCKERFILE.read_text()


def test_no_credentials_in_the_image_inputs() -> None:
    for keyword, rest in instructions():
        if keyword in {"ENV", "ARG"}:
            names = key_values(rest) or {rest.split("=")[0]: ""}
            for name in names:
                assert not SECRET_NAME.search(name), f"{keyword} {name} looks like a credential"
    inputs = [DOCKERFILE, JARS_LOCK, CONSTRAINTS, DOCKER / "fetch.py", *DOCKER.glob("standin/*")]
    for path in inputs:
        assert not SECRET_VALUE.search(path.read_text()), f"{path} holds something like a key"
    rules = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    rules = [rule for rule in rules if rule and not rule.startswith("#")]
    assert rules[0] == "*", ".dockerignore must exclude everything first, then admit by name"


def test_oci_labels() -> None:
    labels: dict[str, str] = {}
    for keyword, rest in final_stage():
        if keyword == "LABEL":
            labels.update(key_values(rest))
    assert set(labels) >= OCI_LABELS, OCI_LABELS - set(labels)
    assert labels["org.opencontainers.image.licenses"] == pyproject()["project"]["license"]
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert arg_default("VERSION") == pyproject()["project"]["version"]


def test_jars_are_pinned_by_sha256_and_match_the_spark_line() -> None:
    entries = jar_lock()
    names = {Path(path).name.rsplit("-", 1)[0]: Path(path) for _, path in entries}
    assert set(names) == {"hadoop-aws", "bundle", "spark-hadoop-cloud_2.13"}
    for sha256, _ in entries:
        assert re.fullmatch(r"[0-9a-f]{64}", sha256)
    spark = pinned_spark_version()
    cloud = names["spark-hadoop-cloud_2.13"].parent.name
    assert cloud.split(".")[:2] == spark.split(".")[:2]
    hadoop_aws = names["hadoop-aws"].parent.name
    if installed_spark_version() is not None:
        from fruitlens import jars

        assert hadoop_aws == jars.hadoop_version(), "hadoop-aws must equal Spark's Hadoop"
    # The image bakes the lock the package ships (fruitlens.jars reads it): one lock.
    fetches = [rest for keyword, rest in instructions() if "fetch.py jars" in rest]
    copies = [rest for keyword, rest in instructions() if keyword == "COPY"]
    assert fetches and any("app/fruitlens/data/jars.lock" in rest for rest in copies)


def test_weights_defaults_match_the_engine() -> None:
    from fruitlens import weights

    assert arg_default("WEIGHTS_URL") == weights.IMAGENET_URL
    assert arg_default("WEIGHTS_MD5") == weights.IMAGENET_MD5
    env = final_env()
    assert env["FRUITLENS_WEIGHTS"] == f"/opt/fruitlens/weights/{weights.IMAGENET_FILE}"
    assert env["KERAS_HOME"]
    assert env["PYSPARK_PYTHON"].startswith("/opt/fruitlens/venv/")
    copies = [rest for keyword, rest in final_stage() if keyword == "COPY"]
    assert "app/fruitlens/__main__.py /opt/fruitlens/main.py" in copies


def test_native_linear_algebra_as_in_local_runs() -> None:
    """The image's Spark ML gets OpenBLAS, the threaded build, one thread per call: what
    `make native-linalg` and session.local_defaults give a local run."""
    from fruitlens.session import local_defaults

    installs = " ".join(rest for keyword, rest in final_stage() if keyword == "RUN")
    assert "libopenblas0-pthread" in installs and "openblas0-serial" not in installs
    assert final_env()["OPENBLAS_NUM_THREADS"] == local_defaults()["OPENBLAS_NUM_THREADS"]


def test_constraints_lock_every_requirement_with_hashes_and_leave_out_pyspark() -> None:
    compile_constraints = load_docker_module("compile_constraints")
    assert compile_constraints.main(["--check"]) == 0
    text = CONSTRAINTS.read_text()
    pins = [line for line in text.splitlines() if line and not line[0].isspace() and "==" in line]
    assert pins
    for name in ("pyspark", "py4j"):
        assert not any(line.lower().startswith(f"{name}==") for line in pins)
    blocks = re.split(r"\n(?=\S)", text)
    for block in blocks:
        if "==" in block.split("\n", 1)[0]:
            assert "--hash=sha256:" in block, block.split("\n", 1)[0]
    # tensorflow-cpu comes from the lock: the image has no GPU libraries to carry.
    assert any(line.startswith("tensorflow-cpu==") for line in pins)


def test_dockerignore_admits_everything_the_dockerfile_copies() -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    ]
    for keyword, rest in instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        for source in rest.split()[:-1]:
            if source.startswith("--"):
                continue
            assert any(
                source.rstrip("/") == entry or source.startswith(entry + "/") for entry in allowed
            ), f"{source} is copied but excluded by .dockerignore"


def test_fetch_verifies_checksums(tmp_path: Path) -> None:
    fetch = load_docker_module("fetch")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"fruitlens" * 1000)
    md5 = hashlib.md5(payload.read_bytes(), usedforsecurity=False).hexdigest()
    sha256 = hashlib.sha256(payload.read_bytes()).hexdigest()
    url = payload.as_uri()

    good = tmp_path / "out" / "good.bin"
    assert fetch.main(["file", "--url", url, "--dest", str(good), "--md5", md5]) == 0
    assert good.read_bytes() == payload.read_bytes()

    bad = tmp_path / "out" / "bad.bin"
    with pytest.raises(fetch.ChecksumError):
        fetch.main(["file", "--url", url, "--dest", str(bad), "--sha256", "0" * 64])
    assert not bad.exists() and not list(bad.parent.glob(".bad.bin.*"))
    with pytest.raises(ValueError, match="without a checksum"):
        fetch.main(["file", "--url", url, "--dest", str(bad)])

    repo = tmp_path / "repo"
    (repo / "g" / "a" / "1").mkdir(parents=True)
    shutil.copyfile(payload, repo / "g" / "a" / "1" / "a-1.jar")
    lock = tmp_path / "jars.lock"
    lock.write_text(f"# comment\n{sha256}  g/a/1/a-1.jar\n")
    dest = tmp_path / "jars"
    assert (
        fetch.main(["jars", "--lock", str(lock), "--dest", str(dest), "--repo", repo.as_uri()]) == 0
    )
    assert (dest / "a-1.jar").read_bytes() == payload.read_bytes()


def test_standin_scripts_parse() -> None:
    bash = shutil.which("bash")
    assert bash
    for script in sorted((DOCKER / "standin").glob("*.sh")):
        subprocess.run([bash, "-n", str(script)], check=True)


# --- real build and run (podman, stand-in base) -------------------------------------------------

needs_image_test = pytest.mark.skipif(
    os.environ.get("FRUITLENS_IMAGE_TEST") != "1",
    reason="image build and run are opt-in (several minutes): `make image-test` runs them",
)


@dataclass
class BuiltImage:
    tag: str
    weights_md5: str
    podman: list[str]
    timings: dict[str, float]

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        options: tuple[str, ...] = (),
        timeout: float = 600,
    ):
        command = [*self.podman, "run", "--rm", "--network", "host", *options]
        for key, value in (env or {}).items():
            command += ["-e", f"{key}={value}"]
        return subprocess.run(
            [*command, self.tag, *args], capture_output=True, text=True, timeout=timeout
        )


def image_cache() -> Path:
    default = Path(os.environ.get("FRUITLENS_CACHE", Path.home() / ".cache" / "fruitlens"))
    return Path(os.environ.get("IMAGE_CACHE", default / "image"))


def podman_command(cache: Path, patch: pytest.MonkeyPatch) -> list[str]:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed here: `make image-tools` installs it")
    conf = Path(os.environ.get("CONTAINERS_CONF", cache / "containers.conf"))
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
            '[engine]\nruntime = "runc"\n'
        )
    patch.setenv("CONTAINERS_CONF", str(conf))  # undone when the module's tests end
    info = subprocess.run([podman, "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run on this machine: {info.stderr.strip()[-500:]}")
    return [podman]


def timed(command: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> float:
    start = time.monotonic()
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
        )
    return round(time.monotonic() - start, 1)


@functools.cache
def ca_bundle_mount() -> list[str]:
    """This machine reaches PyPI and Maven Central through a TLS proxy whose CA only the host
    trusts; lending the host's bundle to the build steps (not to the image) lets pip and
    fetch.py verify it. Docker users on ordinary networks need nothing of the kind."""
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    return ["-v", f"{bundle}:{bundle}:ro"] if bundle.is_file() else []


@pytest.fixture(scope="module")
def weights_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Serves a folder on loopback so the build fetches the test weights over HTTP, as in prod."""
    folder = tmp_path_factory.mktemp("weights-served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def built_image(weights_server: tuple[Path, str]) -> Iterator[BuiltImage]:
    if os.environ.get("FRUITLENS_IMAGE_TEST") != "1":
        pytest.skip("image build is opt-in: `make image-test`")
    with pytest.MonkeyPatch.context() as patch:
        yield build_image(weights_server, podman_command(image_cache(), patch))


def build_image(weights_server: tuple[Path, str], podman: list[str]) -> BuiltImage:
    cache = image_cache()
    for needed in ("README.md", "app/fruitlens/__main__.py", "app/fruitlens/cli.py"):
        if not (ROOT / needed).exists():
            pytest.skip(f"{needed} does not exist yet; the Dockerfile copies it")
    spark = pinned_spark_version()
    base = os.environ.get("STANDIN_IMAGE", f"localhost/fruitlens-standin-base:{spark}")
    timings: dict[str, float] = {}
    timings["standin_base_s"] = 0.0
    if subprocess.run([*podman, "image", "exists", base], check=False).returncode != 0:
        timings["standin_base_s"] = timed(
            ["bash", str(DOCKER / "standin" / "build-base.sh")],
            env={"IMAGE_CACHE": str(cache), "SPARK_VERSION": spark, "STANDIN_IMAGE": base},
        )
    build = [*podman, "build", "--format", "docker", "--network", "host", *ca_bundle_mount()]
    build += ["-f", str(DOCKERFILE), "--build-arg", f"BASE_IMAGE={base}"]

    # The seeded weights are written by the dependency stage itself: no TensorFlow on the host.
    weights = cache / "test" / WEIGHTS_NAME
    deps_tag = "localhost/fruitlens-test-deps:latest"
    timings["deps_stage_s"] = timed([*build, "--target", "python-deps", "-t", deps_tag, str(ROOT)])
    if not weights.exists():
        weights.parent.mkdir(parents=True, exist_ok=True)
        scripts = ROOT / "tests" / "support" / "image"
        timed(
            [
                *podman,
                "run",
                "--rm",
                "-v",
                f"{scripts}:/scripts:ro",
                "-v",
                f"{weights.parent}:/out",
                deps_tag,
                "/opt/fruitlens/venv/bin/python",
                "/scripts/make_weights.py",
                f"/out/{WEIGHTS_NAME}",
            ]
        )
    served, base_url = weights_server
    shutil.copyfile(weights, served / WEIGHTS_NAME)
    md5 = hashlib.md5(weights.read_bytes(), usedforsecurity=False).hexdigest()

    tag = "localhost/fruitlens:image-test"
    full = [*build, "--build-arg", f"WEIGHTS_URL={base_url}/{WEIGHTS_NAME}"]
    full += ["--build-arg", f"WEIGHTS_MD5={md5}", "--build-arg", "REVISION=image-test"]
    timings["build_s"] = timed([*full, "-t", tag, str(ROOT)])
    timings["rebuild_cached_s"] = timed([*full, "-t", tag, str(ROOT)])
    sizes = subprocess.run(
        [*podman, "image", "inspect", "--format", "{{.Size}}", tag, base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    timings["image_bytes"], timings["base_bytes"] = float(sizes[0]), float(sizes[1])
    report = cache / "test" / "timings.json"
    report.write_text(json.dumps(timings, indent=2) + "\n")
    print(f"image timings and sizes: {timings}")
    return BuiltImage(tag=tag, weights_md5=md5, podman=podman, timings=timings)


@pytest.mark.slow
@needs_image_test
def test_image_config(built_image: BuiltImage) -> None:
    proc = subprocess.run(
        [*built_image.podman, "image", "inspect", built_image.tag],
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(proc.stdout)[0]["Config"]
    assert config["User"] == "185"
    assert config["Entrypoint"] == ["/opt/entrypoint.sh"]
    assert not config.get("Healthcheck")
    assert set(config["Labels"]) >= OCI_LABELS
    assert config["Labels"]["org.opencontainers.image.revision"] == "image-test"


@pytest.mark.slow
@needs_image_test
def test_image_python_side(built_image: BuiltImage) -> None:
    proc = built_image.run(
        "python",
        "-c",
        "import os, fruitlens, pyspark, tensorflow; "
        "print(os.getuid(), pyspark.__version__, tensorflow.__version__)",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    uid, spark, _tf = proc.stdout.split()[-3:]
    assert (uid, spark) == ("185", pinned_spark_version())
    helped = built_image.run("fruitlens", "--help")
    assert helped.returncode == 0 and "run" in helped.stdout, helped.stderr[-3000:]


@pytest.mark.slow
@needs_image_test
def test_image_runs_under_a_random_uid_of_group_0(built_image: BuiltImage) -> None:
    """OpenShift-style: an arbitrary UID with GID 0 loads the baked weights into VGG16, and keras
    keeps KERAS_HOME (writable through group 0) instead of falling back to /tmp and a download."""
    script = (
        "import os; from fruitlens import weights; "
        "resolved = weights.resolve(os.environ['FRUITLENS_WEIGHTS'], None); "
        "weights.load_into(weights.build_vgg16(64), resolved.local_path); "
        "print(os.getuid(), os.access(os.environ['KERAS_HOME'] + '/models', os.W_OK))"
    )
    proc = built_image.run("python", "-c", script, options=("--user", "4242:0"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["4242", "True"]


@pytest.mark.slow
@needs_image_test
def test_image_driver_entrypoint_runs_main_py(built_image: BuiltImage) -> None:
    """The operator's call shape: `driver ... local:///opt/fruitlens/main.py ARGS`."""
    proc = built_image.run(
        "driver",
        "--master",
        "local[1]",
        "local:///opt/fruitlens/main.py",
        "--help",
        env={"SPARK_DRIVER_BIND_ADDRESS": "127.0.0.1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "run" in proc.stdout


@pytest.mark.slow
@needs_image_test
def test_image_spark_ml_loads_native_blas_and_lapack(built_image: BuiltImage) -> None:
    """netlib falls back to its Java translation, with only a warning, when libblas.so.3 or
    liblapack.so.3 cannot load: ask it which implementation it took."""
    script = (
        "from pyspark.sql import SparkSession; "
        "jvm = SparkSession.builder.master('local[1]').getOrCreate().sparkContext._jvm; "
        "netlib = jvm.dev.ludovic.netlib; "
        "print(netlib.blas.BLAS.getInstance().getClass().getSimpleName(), "
        "netlib.lapack.LAPACK.getInstance().getClass().getSimpleName())"
    )
    proc = built_image.run("python", "-c", script, env={"SPARK_LOCAL_IP": "127.0.0.1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["JNIBLAS", "JNILAPACK"], proc.stderr[-3000:]


@pytest.mark.slow
@needs_image_test
def test_image_jars_and_weights(built_image: BuiltImage) -> None:
    names = [Path(path).name for _, path in jar_lock()]
    script = (
        "cd /opt/spark/jars && sha256sum "
        + " ".join(names)
        + ' && md5sum "$FRUITLENS_WEIGHTS" && readlink -f "$KERAS_HOME/models/'
        + WEIGHTS_NAME
        # The job's own check of the baked jars against the lock the package ships.
        + '" && fruitlens jars'
    )
    proc = built_image.run("bash", "-c", script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.split("\n")
    assert {tuple(line.split()) for line in lines[: len(names)]} == {
        (sha256, Path(path).name) for sha256, path in jar_lock()
    }
    assert lines[len(names)].split()[0] == built_image.weights_md5
    assert lines[len(names) + 1] == f"/opt/fruitlens/weights/{WEIGHTS_NAME}"
    assert lines[len(names) + 2 : 2 * len(names) + 2] == [f"/opt/spark/jars/{n}" for n in names]
    # The reader the image compiled is the one the job looks for: the same name, from the same
    # sources, compiler and Spark version.
    from fruitlens import jars

    assert lines[2 * len(names) + 2] == str(jars.reader_path(Path("/opt/spark/jars")))


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.s3
@needs_image_test
def test_image_spark_submit_runs_the_job_against_s3(
    built_image: BuiltImage, s3_server, small_slice: Path
) -> None:
    """The image's entry point runs the real job: s3a in, VGG16 with the baked weights, s3a out."""
    bucket = s3_server.make_bucket("image-test")
    assert s3_server.upload_tree(small_slice, bucket, "raw") > 0
    output = f"s3a://{bucket}/runs/r1"
    proc = built_image.run(
        "spark-submit",
        "--master",
        "local[2]",
        "--conf",
        "spark.driver.memory=2g",
        "local:///opt/fruitlens/main.py",
        "run",
        "--input",
        f"s3a://{bucket}/raw",
        "--output",
        output,
        "--s3-endpoint",
        s3_server.endpoint,
        env={
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "eu-west-3",
        },
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    client = s3_server.client()
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix="runs/r1/"
        )
        for item in page.get("Contents", [])
    ]
    assert "runs/r1/run.json" in keys, keys
    run = json.loads(client.get_object(Bucket=bucket, Key="runs/r1/run.json")["Body"].read())
    assert built_image.weights_md5  # the default weights are the baked file:
    assert WEIGHTS_NAME in json.dumps(run), "run.json should name the baked weights file"
    # A non-empty JSON _SUCCESS is written only by an S3A committer: the baked jars work.
    successes = [key for key in keys if key.endswith("/_SUCCESS")]
    assert successes, keys
    body = client.get_object(Bucket=bucket, Key=successes[0])["Body"].read()
    assert json.loads(body).get("committer"), body[:200]
