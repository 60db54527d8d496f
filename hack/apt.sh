#!/usr/bin/env bash
# Debian packages the local cluster and its image builds need (idempotent: nothing to do when
# they are there). containerd 1.6 and runc from Debian 12; the CNI reference plugins
# (bridge, host-local, portmap, loopback) in /usr/lib/cni; podman/buildah/debootstrap for the
# images; gcc and libc6-dev for the static pause binary.
set -euo pipefail
packages=(containerd runc containernetworking-plugins iptables conntrack iproute2 curl openssl
  podman buildah debootstrap uidmap fuse-overlayfs zip unzip gcc libc6-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "[apt] installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
