#!/usr/bin/env bash
# The local cluster's images, built here with podman (no registry is reachable) and imported
# into the cluster's containerd:
#   fruitlens       docker/Dockerfile as users build it, FROM the stand-in Spark base
#                   (docker/standin/build-base.sh), with seeded VGG16 weights served from
#                   loopback in place of the ImageNet download (as tests/deploy/test_image.py does)
#   spark-operator  the operator binary on the same base (upstream builds it FROM apache/spark)
#   pause           the sandbox image, from Kubernetes' pause.c
#
#   hack/images.sh build [pause|operator|project]...
#                            build them (default: all; podman's layer cache skips what is fresh)
#   hack/images.sh import [pause|operator|project]...
#                            import into the running cluster's containerd what it lacks
set -euo pipefail
source "$(dirname "$0")/lib.sh"

IMAGE_CACHE=${IMAGE_CACHE:-$CACHE/image}
WEIGHTS_NAME=vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5
# Shared with tests/deploy/test_image.py: one seeded weights file per cache.
WEIGHTS=$IMAGE_CACHE/test/$WEIGHTS_NAME

# This machine reaches PyPI and Maven Central through a TLS proxy whose CA only the host trusts:
# lend the host's bundle to the build steps (not to the image).
build_flags=(--format docker --network host)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
  build_flags+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)

build_project() {
  local deps=localhost/fruitlens-deps:$PROJECT_VERSION
  podman build "${build_flags[@]}" -f "$REPO/docker/Dockerfile" \
    --build-arg "BASE_IMAGE=$STANDIN_IMAGE" --target python-deps -t "$deps" "$REPO"
  if [[ ! -s $WEIGHTS ]]; then
    mkdir -p "$(dirname "$WEIGHTS")"
    podman run --rm -v "$REPO/tests/support/image:/scripts:ro" -v "$(dirname "$WEIGHTS"):/out" "$deps" \
      /opt/fruitlens/venv/bin/python /scripts/make_weights.py "/out/$WEIGHTS_NAME"
  fi
  # The Dockerfile fetches the weights over HTTP with a checksum, as in production.
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -m http.server --bind 127.0.0.1 --directory "$(dirname "$WEIGHTS")" "$port" \
    >/dev/null 2>&1 &
  local server=$!
  # A RETURN trap stays set after the function: clear it, or it fires again when the caller
  # returns and its failed kill stops the script (set -e).
  # shellcheck disable=SC2064
  trap "kill $server 2>/dev/null || true; trap - RETURN" RETURN
  wait_for 10 "weights server" curl -sf -o /dev/null "http://127.0.0.1:$port/"
  podman build "${build_flags[@]}" -f "$REPO/docker/Dockerfile" \
    --build-arg "BASE_IMAGE=$STANDIN_IMAGE" \
    --build-arg "WEIGHTS_URL=http://127.0.0.1:$port/$WEIGHTS_NAME" \
    --build-arg "WEIGHTS_MD5=$(md5sum "$WEIGHTS" | cut -d' ' -f1)" \
    --build-arg "VERSION=$PROJECT_VERSION" \
    --build-arg "REVISION=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t "$PROJECT_IMAGE" "$REPO"
}

# build_small NAME CONTAINERFILE FILE...: an image whose context is just FILEs.
build_small() {
  local image=$1 containerfile=$2 context
  shift 2
  context=$(mktemp -d)
  cp "$@" "$context/"
  # Files from the Go module cache are read-only and not executable (0444).
  chmod 0755 "$context"/*
  local args=()
  grep -q '^ARG BASE_IMAGE' "$REPO/hack/images/$containerfile" &&
    args=(--build-arg "BASE_IMAGE=$STANDIN_IMAGE")
  podman build "${build_flags[@]}" "${args[@]}" -f "$REPO/hack/images/$containerfile" \
    -t "$image" "$context"
  rm -rf "$context"
}

build_operator() {
  local module
  module=$("$REPO/hack/tools.sh" operator-module)
  build_small "$OPERATOR_IMAGE" operator.Containerfile "$TOOLS/bin/spark-operator" \
    "$module/entrypoint.sh"
}

build() {
  IMAGE_CACHE=$IMAGE_CACHE SPARK_VERSION=$SPARK_VERSION STANDIN_IMAGE=$STANDIN_IMAGE \
    bash "$REPO/docker/standin/build-base.sh"
  local what targets=("$@")
  ((${#targets[@]})) || targets=(pause operator project)
  for what in "${targets[@]}"; do
    case $what in
      pause) build_small "$PAUSE_IMAGE" pause.Containerfile "$TOOLS/bin/pause" ;;
      operator) build_operator ;;
      project) build_project ;;
      *) die "unknown image $what (pause, operator, project)" ;;
    esac
  done
}

# import_one IMAGE: skip it when containerd already holds the same podman image ID.
import_one() {
  local image=$1 id stamp archive
  id=$(podman image inspect --format '{{.Id}}' "$image") || die "$image not built: run hack/images.sh build"
  stamp=$E2E_CACHE/imported/${image//[\/:]/_}
  if [[ -f $stamp && $(<"$stamp") == "$id" ]] && ctr_ images ls -q | grep -xF "$image" >/dev/null; then
    return 0
  fi
  mkdir -p "$E2E_CACHE/imported"
  archive=$(mktemp -p "$E2E_CACHE" import.XXXXXX.tar)
  log "importing $image into containerd"
  podman save --format docker-archive -o "$archive" "$image" || {
    rm -f "$archive"
    die "podman could not save $image"
  }
  # containerd's garbage collector can delete a snapshot that an unpack is about to build on,
  # when the import replaces an image that shares lower layers with it ("failed to prepare
  # extraction snapshot ... parent snapshot ... does not exist", containerd/containerd#10835,
  # seen here at 2026-12-05 06:15). The content is stored by then: importing again unpacks it.
  local try
  for try in 1 2 3; do
    ctr_ images import "$archive" >/dev/null && break
    if ((try == 3)); then
      rm -f "$archive" # gigabytes in the cache otherwise
      die "containerd could not import $image (3 tries; containerd.log in $E2E_LOGS)"
    fi
    log "importing $image failed (try $try of 3); importing again"
  done
  rm -f "$archive"
  ctr_ images ls -q | grep -xF "$image" >/dev/null || die "containerd does not list $image after import"
  echo "$id" >"$stamp"
}

case ${1:-} in
  build)
    shift
    build "$@"
    ;;
  import)
    shift
    declare -A by_name=([pause]=$PAUSE_IMAGE [operator]=$OPERATOR_IMAGE [project]=$PROJECT_IMAGE)
    names=("$@")
    ((${#names[@]})) || names=(pause operator project)
    for name in "${names[@]}"; do
      [[ -n ${by_name[$name]:-} ]] || die "unknown image $name (pause, operator, project)"
      import_one "${by_name[$name]}"
    done
    ;;
  *) die "usage: hack/images.sh build|import" ;;
esac
