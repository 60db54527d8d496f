#!/usr/bin/env bash
# Builds a local stand-in for apache/spark:<version>-python3 when no container registry can be
# reached: a debootstrapped Debian bookworm with a JRE 17 and python3, Spark laid out like the
# official image (/opt/spark/{jars,bin,sbin,python}, SPARK_HOME, user spark 185, WORKDIR
# /opt/spark/work-dir, ENTRYPOINT /opt/entrypoint.sh), imported into podman's local store.
# docker/Dockerfile is then built FROM it unchanged, so the Dockerfile under test is the one users
# build. Spark comes from the pyspark sdist on PyPI, which carries the same jars/bin/sbin as the
# binary distribution (minus examples, R and the Kubernetes test files).
#
# Known differences from the official image, none of which docker/Dockerfile depends on:
# Debian bookworm (Python 3.11, PEP 668 marker present) instead of Ubuntu jammy (Python 3.10),
# Debian's OpenJDK JRE instead of Eclipse Temurin at /opt/java/openjdk, no gosu/krb5/net-tools,
# and a minimal entrypoint (docker/standin/entrypoint.sh) instead of the official one.
#
# Idempotent: an existing image with the same tag is kept unless FORCE=1.
# Environment: IMAGE_CACHE (required; debs, sdist and rootfs are kept there), SPARK_VERSION,
# STANDIN_IMAGE, DEBIAN_MIRROR, PIP (a pip able to reach PyPI), FORCE.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${IMAGE_CACHE:?set IMAGE_CACHE to a directory outside the repository}"
spark_version="${SPARK_VERSION:-4.0.4}"
image="${STANDIN_IMAGE:-localhost/fruitlens-standin-base:${spark_version}}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
pip="${PIP:-python3 -m pip}"
suite=bookworm
java_home=/usr/lib/jvm/java-17-openjdk-amd64

if [ "${FORCE:-0}" != 1 ] && podman image exists "$image"; then
  echo "stand-in base $image already present (FORCE=1 rebuilds it)"
  exit 0
fi

mkdir -p "$cache/wheels" "$cache/standin/debs"
sdist="$cache/wheels/pyspark-${spark_version}.tar.gz"
if [ ! -s "$sdist" ]; then
  # pyspark is published as an sdist only; --no-deps keeps py4j out (fetched below, pinned).
  $pip download --quiet --no-deps --no-binary pyspark -d "$cache/wheels" "pyspark==${spark_version}"
fi
# The official distribution ships the py4j that pyspark's setup.py pins; take the newest it allows.
py4j_spec="$(tar -xzf "$sdist" -O "pyspark-${spark_version}/setup.py" \
  | grep -o 'py4j[^"]*' | head -n1)"
$pip download --quiet --no-deps --only-binary :all: -d "$cache/wheels" "$py4j_spec"
py4j_wheel="$(ls -1 "$cache"/wheels/py4j-*-py2.py3-none-any.whl | sort -V | tail -n1)"
py4j_version="$(basename "$py4j_wheel" | cut -d- -f2)"

work="$cache/standin/work"
rootfs="$work/rootfs"
rm -rf "$work"
mkdir -p "$rootfs"

# minbase keeps the rootfs close to a distro base image; the included packages mirror what the
# official image installs on top of eclipse-temurin (tini for the k8s entrypoint, nss_wrapper for
# random UIDs, procps for Spark's scripts, python3 + pip for the -python3 variant).
debootstrap --variant=minbase --cache-dir="$cache/standin/debs" \
  --include=openjdk-17-jre-headless,python3,python3-pip,tini,procps,wget,ca-certificates,libnss-wrapper \
  "$suite" "$rootfs" "$mirror"

chroot "$rootfs" groupadd --system --gid 185 spark
chroot "$rootfs" useradd --system --uid 185 --gid spark --home-dir /nonexistent \
  --shell /usr/sbin/nologin spark

tar -xzf "$sdist" -C "$work"
src="$work/pyspark-${spark_version}"
spark_home="$rootfs/opt/spark"
mkdir -p "$spark_home/python/lib" "$spark_home/work-dir" "$spark_home/conf"
mv "$src/deps/jars" "$src/deps/bin" "$src/deps/sbin" "$spark_home/"
# Only the launchers matter here; Windows wrappers are dropped as in the Linux images.
rm -f "$spark_home"/bin/*.cmd
chmod 0755 "$spark_home"/bin/* "$spark_home"/sbin/*
cp -a "$src/pyspark" "$spark_home/python/pyspark"
(cd "$src" && zip -qr "$spark_home/python/lib/pyspark.zip" pyspark)
unzip -q "$py4j_wheel" 'py4j/*' -d "$work/py4j"
(cd "$work/py4j" && zip -qr "$spark_home/python/lib/py4j-${py4j_version}-src.zip" py4j)
hadoop_version="$(basename "$(ls "$spark_home"/jars/hadoop-client-api-*.jar)" .jar)"
printf 'Spark %s built for Hadoop %s (fruitlens stand-in, from the pyspark sdist)\n' \
  "$spark_version" "${hadoop_version#hadoop-client-api-}" >"$spark_home/RELEASE"
install -m 0755 "$here/entrypoint.sh" "$rootfs/opt/entrypoint.sh"
chroot "$rootfs" chown -R spark:spark /opt/spark
chmod g+w "$spark_home/work-dir"

rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
  "$rootfs"/var/log/*.log "$rootfs"/tmp/*

tar --numeric-owner --xattrs -C "$rootfs" -cf "$work/rootfs.tar" .
podman import \
  --change 'ENV SPARK_HOME=/opt/spark' \
  --change "ENV JAVA_HOME=$java_home" \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'WORKDIR /opt/spark/work-dir' \
  --change 'USER spark' \
  --change 'ENTRYPOINT ["/opt/entrypoint.sh"]' \
  --change "LABEL org.opencontainers.image.title=fruitlens-standin-base" \
  --change "LABEL org.opencontainers.image.version=${spark_version}" \
  --change "LABEL org.opencontainers.image.description=Local test stand-in for apache/spark:${spark_version}-python3" \
  "$work/rootfs.tar" "$image"
rm -rf "$work"
podman image ls "$image"
