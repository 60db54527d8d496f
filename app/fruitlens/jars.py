"""The jars a run adds to Spark's: the s3a jars, as pinned by the one jar lock
(``data/jars.lock``) and checked on every use, and fruitlens's JVM reader (reader_jar).

The lock lists each jar as "<sha256>  <path under the Maven repository>"; the image build
(docker/Dockerfile through docker/fetch.py) bakes exactly those files into /opt/spark/jars, and
this module fetches the same files from Maven Central into a cache for local runs. pooch does
the download, the retries and the sha256 check; a cached jar whose size or mtime changed since
its last check is hashed again, so a damaged or swapped jar is replaced or refused, never
loaded.

The lock must fit the installed pyspark: hadoop-aws is the Hadoop inside it (read off its
``hadoop-client-api`` jar) and spark-hadoop-cloud is of its major.minor line. A pyspark
upgrade that breaks either fails here with both versions named, before Spark starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fruitlens import paths
from fruitlens.errors import UsageError

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
LOCK = Path(__file__).resolve().parent / "data" / "jars.lock"
# Size and mtime of each jar when its sha256 was last checked (see _verified).
VERIFIED = ".verified.json"
_LOCK_LINE = re.compile(r"(?P<sha256>[0-9a-f]{64})\s+(?P<path>\S+/(?P<version>[^/]+)/[^/]+\.jar)")


class JarError(UsageError):
    pass


@dataclass(frozen=True)
class LockedJar:
    sha256: str
    path: str  # under the Maven repository, e.g. org/apache/hadoop/hadoop-aws/3.4.1/...
    version: str

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def artifact(self) -> str:
        return PurePosixPath(self.path).parent.parent.name


def read_lock(lock: Path = LOCK) -> list[LockedJar]:
    jars = []
    for number, line in enumerate(lock.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _LOCK_LINE.fullmatch(line.strip())
        if not match:
            raise JarError(f"{lock}:{number}: expected '<sha256>  <maven path>.jar', got {line!r}")
        jars.append(LockedJar(match["sha256"], match["path"], match["version"]))
    return jars


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_version() -> str:
    import pyspark

    return pyspark.__version__


def spark_jar_folders() -> list[Path]:
    """Where Spark's own jars are, the one Spark's launcher uses first: $SPARK_HOME/jars when
    set (the image's pyspark comes from the Spark distribution, on PYTHONPATH), else those of a
    pip-installed pyspark."""
    home = os.environ.get("SPARK_HOME")
    return [*([Path(home) / "jars"] if home else []), pyspark_home() / "jars"]


def spark_jar(prefix: str) -> Path:
    """Spark's own jar `prefix`-VERSION.jar."""
    folders = spark_jar_folders()
    pattern = re.compile(re.escape(prefix) + r"-\d+\.\d+\.\d+\.jar")
    for folder in folders:
        for jar in sorted(folder.glob(f"{prefix}-*.jar")):
            if pattern.fullmatch(jar.name):
                return jar
    where = " or ".join(str(f) for f in folders)
    raise JarError(f"no {prefix}-*.jar under {where}; is pyspark installed?")


def hadoop_version() -> str:
    """Hadoop inside Spark, read off the jar name: the only source that cannot drift."""
    return spark_jar("hadoop-client-api").stem.removeprefix("hadoop-client-api-")


def driver_class_path(locked: list[Path]) -> list[Path]:
    """What a driver started by fruitlens has on its class path ahead of Spark's `jars/*`: the
    `locked` jars, after Spark's own SLF4J API. The AWS SDK bundle that Hadoop 3.4.1 pins
    (2.24.6) also carries SLF4J 1.7's API unshaded (aws/aws-sdk-java-v2#5108). Ahead of Spark's
    SLF4J 2 it wins, finds no 1.x binding and sends every line Spark logs nowhere (SLF4J's NOP
    logger): `-v -v` showed no Spark line, and a failing job lost Spark's own account of it.
    Spark's launcher puts this jar before `jars/*` itself, but after these: named here, it is
    the same path, which the launcher then leaves out (the class archive's recording compares
    the two class paths entry by entry)."""
    return [spark_jar("slf4j-api"), *locked]


def check_lock_fits_spark(jars: list[LockedJar], spark: str, hadoop: str) -> None:
    """hadoop-aws must be Spark's own Hadoop; the committer binding must be of its line."""
    by_artifact = {jar.artifact: jar for jar in jars}
    missing = {"hadoop-aws", "bundle", "spark-hadoop-cloud_2.13"} - set(by_artifact)
    if missing:
        raise JarError(f"{LOCK.name} lacks {', '.join(sorted(missing))}")
    if by_artifact["hadoop-aws"].version != hadoop:
        raise JarError(
            f"{LOCK.name} pins hadoop-aws {by_artifact['hadoop-aws'].version} but pyspark "
            f"{spark} carries Hadoop {hadoop}: update the lock (docs/IMAGE.md)"
        )
    cloud = by_artifact["spark-hadoop-cloud_2.13"].version
    if cloud.split(".")[:2] != spark.split(".")[:2]:
        raise JarError(
            f"{LOCK.name} pins spark-hadoop-cloud {cloud}, not of pyspark {spark}'s line: "
            "update the lock (docs/IMAGE.md)"
        )


def _stamp(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _verified(jars: list[LockedJar], folder: Path) -> bool:
    """Were these very files (same size and mtime) already checked against these sha256s?

    Hashing the 558 MB SDK bundle takes seconds on a loaded machine, at every Spark start; a
    jar that changed in any way since its check changes its mtime and is hashed again.
    """
    try:
        record = json.loads((folder / VERIFIED).read_text())
        return all(record.get(jar.sha256) == _stamp(folder / jar.file_name) for jar in jars)
    except (OSError, ValueError):
        return False


def fetch_locked(jars: list[LockedJar], folder: Path, repo: str = MAVEN_CENTRAL) -> list[Path]:
    """The jars in ``folder``, downloaded from ``repo`` when missing or not as locked."""
    import pooch
    import requests

    if _verified(jars, folder):
        return [folder / jar.file_name for jar in jars]
    fetcher = pooch.create(
        path=folder,
        base_url=repo,
        registry={jar.file_name: f"sha256:{jar.sha256}" for jar in jars},
        urls={jar.file_name: f"{repo.rstrip('/')}/{jar.path}" for jar in jars},
        retry_if_failed=2,
    )
    found = []
    for jar in jars:
        try:
            found.append(Path(fetcher.fetch(jar.file_name)))
        except ValueError as exc:  # pooch: the bytes do not hash as locked
            raise JarError(f"{jar.file_name} from {repo}: sha256 is not the locked one") from exc
        except requests.RequestException as exc:
            raise JarError(
                f"cannot download {jar.file_name} from {repo} ({type(exc).__name__}); "
                "offline? Copy the locked jars into --jars-dir"
            ) from exc
    record = {jar.sha256: _stamp(path) for jar, path in zip(jars, found, strict=True)}
    with contextlib.suppress(OSError):  # a read-only folder (the image's) is checked each time
        (folder / VERIFIED).write_text(json.dumps(record))
    return found


def default_folder() -> Path:
    return paths.cache_dir() / "jars"


def reader_path(folder: Path) -> Path:
    """Where fruitlens's JVM reader for the installed Spark is, or goes, in `folder`."""
    from fruitlens import reader_jar

    return folder / reader_jar.jar_name(spark_version())


def ensure_reader(folder: Path) -> Path:
    """fruitlens's JVM reader in ``folder``, compiled there by ECJ (fetched into the cache like
    the s3a jars) when missing."""
    from fruitlens import jvm_archive, reader_jar

    jar = reader_path(folder)
    if jar.is_file():
        return jar
    [ecj] = fetch_locked(read_lock(reader_jar.COMPILER_LOCK), default_folder() / "compiler")
    try:
        return reader_jar.build(
            folder, ecj, spark_jar("spark-core_2.13").parent, str(jvm_archive.java_binary())
        )
    except OSError as exc:  # a read-only folder, or no java to run ECJ with
        raise JarError(f"cannot compile {jar.name} into {folder}: {exc}") from exc


def ensure_jars(folder: str | None = None) -> list[Path]:
    """The locked jars and fruitlens's JVM reader in ``folder`` (default: the cache), fetched
    or compiled once and verified each time."""
    jars = read_lock()
    check_lock_fits_spark(jars, spark_version(), hadoop_version())
    target = Path(folder) if folder else default_folder()
    return [*fetch_locked(jars, target), ensure_reader(target)]
