#!/usr/bin/env bash
# Builds the Kubernetes tool chain fruitlens' deployment checks use, from the Go module proxy,
# into $FRUITLENS_CACHE/tools (never inside the repository). Each tool lands in a folder named
# after its version, so a cached tool costs one `test -x` and a version bump rebuilds only it.
#
#   scripts/k8s-tools.sh [helm|kustomize|etcd|kube|kind|all]...
#
# Why build from source: the only registries reachable here (and on CI) are package registries;
# release binaries on GitHub/dl.k8s.io cannot be fetched, and /usr/bin/kubectl is a
# machine-specific wrapper, while Debian's kubernetes-client is v1.20 (too old to talk to 1.35).
set -euo pipefail

HELM_VERSION=${HELM_VERSION:-v3.22.0}
# v5.8.3 needs go >= 1.27; v5.8.2 is the newest that builds with the machine's go 1.26.
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.8.2}
# etcd 3.6 is the line Kubernetes 1.35 is tested with (Debian 12's etcd-server is 3.4).
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
# Same minor as the kind node image (kindest/node:v1.35.0); v1.35.4 is the newest 1.35 patch the
# module proxy serves.
KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
# kind is only needed where a Docker engine runs (make kind-up); not part of "all".
KIND_VERSION=${KIND_VERSION:-v0.33.0}

CACHE=${FRUITLENS_CACHE:-$HOME/.cache/fruitlens}
TOOLS=${FRUITLENS_TOOLS:-$CACHE/tools}
BIN=$TOOLS/bin
# A private module and build cache: builds are reproducible from the proxy alone and `make clean`
# of another project cannot wipe them.
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$TOOLS/go/mod}
export GOCACHE=${GOCACHE_OVERRIDE:-$TOOLS/go/build}
export GOFLAGS="-buildvcs=false -trimpath"
export CGO_ENABLED=0
# Build with the machine's Go; a module asking for a newer one fails loudly instead of fetching it.
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
mkdir -p "$BIN"

log() { printf '[k8s-tools] %s\n' "$*" >&2; }

# link NAME DIR: point bin/NAME at the versioned binary so callers need one PATH entry.
link() { ln -sfn "$2/$1" "$BIN/$1"; }

timed() {
  local name=$1
  shift
  local start=$SECONDS
  "$@"
  log "$name built in $((SECONDS - start))s"
}

install_helm() {
  local dir=$TOOLS/helm-$HELM_VERSION
  if [[ ! -x $dir/helm ]]; then
    log "building helm $HELM_VERSION (go install)"
    # The release Makefile's ldflags: without them helm reports version "v3.22" and assumes a
    # Kubernetes v1.20 cluster, so `helm template` rejects kubeVersion constraints. helm 3.22 is
    # built against the 1.37 client libraries, as its release binaries are.
    local ld="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    local pkg
    for pkg in pkg/lint/rules pkg/chartutil; do
      ld+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=37"
    done
    timed helm env GOBIN="$dir" go install -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  fi
  link helm "$dir"
}

install_kustomize() {
  local dir=$TOOLS/kustomize-$KUSTOMIZE_VERSION
  if [[ ! -x $dir/kustomize ]]; then
    log "building kustomize $KUSTOMIZE_VERSION (go install)"
    timed kustomize env GOBIN="$dir" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  fi
  link kustomize "$dir"
}

# wrapper_module DIR MODULE VERSION: a throw-away main module that requires MODULE, because
# `go install pkg@version` refuses modules whose go.mod has replace directives (etcd's and
# Kubernetes' both point at sibling folders that are not in the published module zip).
wrapper_module() {
  local dir=$1 module=$2 version=$3
  rm -rf "$dir"
  mkdir -p "$dir"
  (cd "$dir" && go mod init fruitlens.local/k8stools >/dev/null 2>&1 && go mod edit -go=1.25)
  (cd "$dir" && go mod edit -require="$module@$version")
}

install_etcd() {
  local dir=$TOOLS/etcd-$ETCD_VERSION
  if [[ ! -x $dir/etcd ]]; then
    log "building etcd $ETCD_VERSION"
    local src=$TOOLS/src/etcd-$ETCD_VERSION
    wrapper_module "$src" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
    # The server's siblings (api, client, pkg) carry the same version tag.
    (cd "$src" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 \
      && go mod tidy >/dev/null 2>&1 || true)
    (cd "$src" && printf 'package main\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n' >tools.go)
    (cd "$src" && go get "go.etcd.io/etcd/server/v3/etcdmain@$ETCD_VERSION" >/dev/null)
    mkdir -p "$dir"
    timed etcd bash -c "cd '$src' && go build -o '$dir/etcd' go.etcd.io/etcd/server/v3"
  fi
  link etcd "$dir"
}

install_kube() {
  local dir=$TOOLS/kube-$KUBE_VERSION
  if [[ ! -x $dir/kube-apiserver || ! -x $dir/kubectl ]]; then
    log "building kube-apiserver and kubectl $KUBE_VERSION (large: tens of minutes cold on 2 cores)"
    local src=$TOOLS/src/kube-$KUBE_VERSION
    wrapper_module "$src" k8s.io/kubernetes "$KUBE_VERSION"
    # k8s.io/kubernetes replaces every k8s.io/<staging> module with ./staging/src/...; those
    # folders are separate modules published as k8s.io/<name> v0.<minor>.<patch>.
    local gomod staging
    gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    staging=v0${KUBE_VERSION#v1}
    local edits=()
    while read -r mod; do
      edits+=("-replace=$mod=$mod@$staging")
    done < <(grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}')
    (cd "$src" && go mod edit "${edits[@]}")
    printf 'package main\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubectl/pkg/cmd"\n)\n' \
      >"$src/tools.go"
    (cd "$src" && go mod tidy >/dev/null)
    mkdir -p "$dir"
    # What hack/lib/version.sh stamps into release builds: without it both report v0.0.0-master,
    # kubectl warns about version skew and the server's compatibility version is wrong.
    local minor=${KUBE_VERSION#v1.}
    minor=${minor%%.*}
    # -s -w as in hack/lib/golang.sh release builds: no DWARF, a much shorter link.
    local ld="-s -w" pkg
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
      ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    timed kube-apiserver bash -c "cd '$src' && go build -ldflags '$ld' -o '$dir/kube-apiserver' k8s.io/kubernetes/cmd/kube-apiserver"
    timed kubectl bash -c "cd '$src' && go build -ldflags '$ld' -o '$dir/kubectl' k8s.io/kubernetes/cmd/kubectl"
  fi
  link kube-apiserver "$dir"
  link kubectl "$dir"
}

install_kind() {
  local dir=$TOOLS/kind-$KIND_VERSION
  if [[ ! -x $dir/kind ]]; then
    log "building kind $KIND_VERSION (go install)"
    timed kind env GOBIN="$dir" go install "sigs.k8s.io/kind@$KIND_VERSION"
  fi
  link kind "$dir"
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(all)
for t in "${targets[@]}"; do
  case $t in
    helm) install_helm ;;
    kustomize) install_kustomize ;;
    etcd) install_etcd ;;
    kube) install_kube ;;
    kind) install_kind ;;
    all) install_helm; install_kustomize; install_etcd; install_kube ;;
    *) log "unknown tool $t"; exit 2 ;;
  esac
done
