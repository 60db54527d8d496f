"""The s3a jars, resolved from Maven Central at the versions the installed pyspark needs.

The versions are derived, not typed in: Hadoop's from the `hadoop-client-api` jar shipped inside
pyspark, the AWS SDK bundle's from that Hadoop release's own POM, and spark-hadoop-cloud (the S3A
committers' Spark binding) as the newest release published for pyspark's major.minor line. Every
jar is checked against Maven Central's SHA-1 before it is moved into the cache.
"""

from __future__ import annotations

import hashlib
import re
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from fruitlens import paths
from fruitlens.errors import UsageError

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
SCALA_BINARY = "2.13"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class JarError(UsageError):
    pass


@dataclass(frozen=True)
class Artifact:
    group: str
    name: str
    version: str

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}.jar"

    def url(self, extension: str = "jar") -> str:
        group_path = self.group.replace(".", "/")
        base = f"{MAVEN_CENTRAL}/{group_path}/{self.name}/{self.version}"
        return f"{base}/{self.name}-{self.version}.{extension}"


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def spark_version() -> str:
    import pyspark

    return pyspark.__version__


def hadoop_version(spark_jars: Path | None = None) -> str:
    """Hadoop inside Spark, read off the jar name: the only source that cannot drift."""
    folder = spark_jars or pyspark_home() / "jars"
    for jar in sorted(folder.glob("hadoop-client-api-*.jar")):
        match = re.fullmatch(r"hadoop-client-api-(\d+\.\d+\.\d+)\.jar", jar.name)
        if match:
            return match.group(1)
    raise JarError(f"no hadoop-client-api-*.jar under {folder}; is pyspark installed?")


def _fetch(url: str, timeout: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def aws_sdk_version(hadoop: str) -> str:
    """The AWS SDK v2 bundle version Hadoop was built and tested with (hadoop-project POM)."""
    pom = Artifact("org.apache.hadoop", "hadoop-project", hadoop).url("pom")
    root = ET.fromstring(_fetch(pom))
    node = root.find("m:properties/m:aws-java-sdk-v2.version", _POM_NS)
    if node is None or not node.text:
        raise JarError(f"{pom} declares no aws-java-sdk-v2.version")
    return node.text.strip()


def hadoop_cloud_version(spark: str) -> str:
    """Newest spark-hadoop-cloud in pyspark's major.minor line, not newer than pyspark itself.

    Apache stopped publishing this module after some patch releases (4.0.2 is the last of 4.0),
    and its committer binding is stable within a minor line.
    """
    name = f"spark-hadoop-cloud_{SCALA_BINARY}"
    root = ET.fromstring(_fetch(f"{MAVEN_CENTRAL}/org/apache/spark/{name}/maven-metadata.xml"))
    wanted = _version_tuple(spark)
    releases = [
        node.text.strip()
        for node in root.iter("version")
        if node.text and re.fullmatch(r"\d+\.\d+\.\d+", node.text.strip())
    ]
    same_line = [
        version
        for version in releases
        if _version_tuple(version)[:2] == wanted[:2] and _version_tuple(version) <= wanted
    ]
    if not same_line:
        raise JarError(f"no {name} release for Spark {spark}")
    return max(same_line, key=_version_tuple)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def required_artifacts() -> list[Artifact]:
    hadoop = hadoop_version()
    return [
        Artifact("org.apache.hadoop", "hadoop-aws", hadoop),
        Artifact("software.amazon.awssdk", "bundle", aws_sdk_version(hadoop)),
        Artifact(
            "org.apache.spark",
            f"spark-hadoop-cloud_{SCALA_BINARY}",
            hadoop_cloud_version(spark_version()),
        ),
    ]


def download_verified(artifact: Artifact, folder: Path) -> Path:
    target = folder / artifact.file_name
    if target.exists():
        return target
    expected = _fetch(artifact.url("jar.sha1")).decode().split()[0].strip()
    partial = target.with_suffix(".jar.part")
    digest = hashlib.sha1(usedforsecurity=False)
    with urllib.request.urlopen(artifact.url(), timeout=120) as response, partial.open("wb") as out:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != expected:
        partial.unlink()
        raise JarError(
            f"{artifact.url()}: SHA-1 {digest.hexdigest()} does not match "
            f"Maven Central's {expected}"
        )
    partial.replace(target)
    return target


def ensure_jars(folder: str | None = None) -> list[Path]:
    """Return the s3a jars, downloading the missing ones once into the cache."""
    target = Path(folder) if folder else paths.cache_dir() / "jars"
    target.mkdir(parents=True, exist_ok=True)
    resolved = target / f"resolved-spark-{spark_version()}.txt"
    if resolved.exists():
        cached = [target / name for name in resolved.read_text().split()]
        if cached and all(jar.exists() for jar in cached):
            return cached
    jars = [download_verified(artifact, target) for artifact in required_artifacts()]
    resolved.write_text("\n".join(jar.name for jar in jars) + "\n")
    return jars
