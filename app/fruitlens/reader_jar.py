"""fruitlens's JVM reader (java/fruitlens/spark/*.java) compiled into a jar beside the s3a jars.

The compiler is ECJ, the Eclipse Compiler for Java: a jar from Maven Central, pinned in
``data/compiler.lock`` and checked like the s3a jars, that runs on the Java Runtime Spark
already needs, so neither a developer's machine nor the image build needs a JDK. The class path
is Spark's own jars folder (Hadoop's client API is among them). The jar is named after its
sources, the compiler and Spark's version: a changed source or another Spark gets a jar of its
own, and an image that baked it into /opt/spark/jars has the very name a local run looks for.

Stdlib only at import: the image build runs this file with the base image's python3
(``python3 reader_jar.py --help``), before fruitlens is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SOURCES = PACKAGE / "java"
COMPILER_LOCK = PACKAGE / "data" / "compiler.lock"
# Compiling the one class takes ECJ 2-4 s of CPU.
COMPILE_TIMEOUT_S = 300
# The entries' date in the jar: the same sources make the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_SPARK_CORE = re.compile(r"spark-core_[\d.]+-(?P<version>\d+\.\d+\.\d+)\.jar")


def sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def spark_version_of(class_path: Path) -> str:
    """Spark's version, read off its spark-core jar in `class_path` (its jars folder)."""
    for jar in sorted(class_path.glob("spark-core_*.jar")):
        match = _SPARK_CORE.fullmatch(jar.name)
        if match:
            return match["version"]
    raise FileNotFoundError(f"no spark-core_*.jar in {class_path}")


def jar_name(spark_version: str) -> str:
    digest = hashlib.sha256(COMPILER_LOCK.read_bytes() + spark_version.encode())
    for source in sources():
        digest.update(source.relative_to(SOURCES).as_posix().encode() + b"\0")
        digest.update(source.read_bytes())
    return f"fruitlens-reader-{digest.hexdigest()[:12]}.jar"


def build(dest: Path, ecj: Path, class_path: Path, java: str = "java") -> Path:
    """Compile the sources against the jars in `class_path` (Spark's jars folder) into
    dest/jar_name(...); an existing jar of that name is kept."""
    jar = dest / jar_name(spark_version_of(class_path))
    if jar.is_file():
        return jar
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fruitlens-reader-") as scratch:
        classes = Path(scratch, "classes")
        command = [
            java,
            "-jar",
            str(ecj),
            "-17",
            "-proc:none",
            "-nowarn",
            "-encoding",
            "UTF-8",
            "-cp",
            os.pathsep.join(str(path) for path in sorted(class_path.glob("*.jar"))),
            "-d",
            str(classes),
            *(str(source) for source in sources()),
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"ECJ could not compile {SOURCES}:\n{done.stdout}{done.stderr}")
        # Written aside, then renamed: a concurrent run never loads a half-written jar (the
        # partial name does not end in .jar, so no class path picks it up either).
        partial = dest / f".{jar.name}.{os.getpid()}.partial"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            manifest = zipfile.ZipInfo("META-INF/MANIFEST.MF", ZIP_EPOCH)
            archive.writestr(manifest, "Manifest-Version: 1.0\r\nCreated-By: fruitlens\r\n\r\n")
            for compiled in sorted(classes.rglob("*.class")):
                entry = zipfile.ZipInfo(compiled.relative_to(classes).as_posix(), ZIP_EPOCH)
                archive.writestr(entry, compiled.read_bytes(), zipfile.ZIP_DEFLATED)
        os.replace(partial, jar)
    return jar


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ecj", type=Path, required=True, help="ECJ's jar (data/compiler.lock)")
    parser.add_argument("--class-path", type=Path, required=True, help="Spark's jars folder")
    parser.add_argument("--dest", type=Path, required=True, help="where the jar goes")
    parser.add_argument("--java", default="java")
    args = parser.parse_args(argv)
    print(build(args.dest, args.ecj, args.class_path, args.java))
    return 0


if __name__ == "__main__":
    sys.exit(main())
