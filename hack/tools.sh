#!/usr/bin/env bash
# Builds the Kubernetes tool chain from the Go module proxy into $FRUITLENS_CACHE/tools (never
# inside the repository): the tools `make test` needs (helm, kustomize, etcd, kube-apiserver,
# kubectl) and, for `make e2e`'s local cluster, the node components, CoreDNS, the Spark Operator
# and the pause binary. ONE script, ONE Kubernetes version for both. Each tool lands in a folder
# named after its version, so a cached tool costs one `test -x` and a version bump rebuilds only it.
#
#   hack/tools.sh [helm|kustomize|etcd|kube|node|coredns|spark-operator|pause|kind|all|cluster]...
#     all      what `make test` needs: helm kustomize etcd kube (kube-apiserver, kubectl)
#     cluster  all, plus node (kubelet, controller-manager, scheduler, kube-proxy), coredns,
#              spark-operator and pause
#
# Why build from source: the only registries reachable here (and on CI) are package registries;
# release binaries on GitHub/dl.k8s.io cannot be fetched, and /usr/bin/kubectl is a
# machine-specific wrapper, while Debian's kubernetes-client is v1.20 (too old to talk to 1.35).
set -euo pipefail

# The Helm line compiled against KUBE_VERSION's client libraries (Helm's version skew policy:
# 3.20.x for Kubernetes 1.35-1.32). It builds in the Kubernetes module below, where its
# client-go, apimachinery and kubectl packages are the ones kube-apiserver and kubectl compile:
# 765 of its 933 packages compiled once instead of twice. Cold on a 2-core AMD EPYC Zen 4,
# helm + kube-apiserver + kubectl took 221 s and 422 CPU-s, against 265 s and 508 CPU-s for
# helm v3.22.0 (Kubernetes 1.37's libraries) built on its own, back to back.
HELM_VERSION=${HELM_VERSION:-v3.20.2}
# The kustomize that kubectl of KUBE_VERSION embeds (`kubectl version --client`), so that
# `kustomize build` renders the overlays as `kubectl apply -k` does (tests/deploy check that the
# two agree). Built in the Kubernetes module, where all but its command's packages are
# kubectl's: 2 s and 3 CPU-s after kubectl, where v5.8.2 `go install`ed alone took 12-15 s.
KUSTOMIZE_VERSION=${KUSTOMIZE_VERSION:-v5.7.1}
# etcd 3.6 is the line Kubernetes 1.35 is tested with (Debian 12's etcd-server is 3.4).
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
# Same minor as the kind node image (kindest/node:v1.35.0); v1.35.4 is the newest 1.35 patch the
# module proxy serves. 1.35 is the last line that runs on containerd 1.x (Debian 12 ships 1.6);
# its kubelet needs `failCgroupV1: false` on cgroup v1 hosts (hack/cluster-up.sh sets it).
KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
KUBE_MINOR=${KUBE_VERSION#v1.}
KUBE_MINOR=${KUBE_MINOR%%.*}
# The 1.14 line is the one proven with this cluster; it builds with the machine's go.
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
# Must match helm/fruitlens' and the docs' operator version (chart spark-operator 2.5.2).
SPARK_OPERATOR_VERSION=${SPARK_OPERATOR_VERSION:-v2.5.2}
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
# Tools for tests and a local cluster, not for production: compiled as Go's debug builds are,
# without the optimiser and inlining. kube-apiserver, cold on a 2-core AMD EPYC Zen 5: 140 s and
# 265 CPU-s against 192 s and 372 CPU-s for a default build, back to back. Nor does the compiler
# write DWARF for a debugger nobody runs on them (release links drop it anyway, -s -w): etcd, cold
# on a 2-core AMD EPYC Zen 4, 71.7 and 72.0 CPU-s against 76.9 and 76.5, alternated. (GOFLAGS
# cannot carry a value with a space: every build below passes it.)
GCFLAGS="all=-N -l -dwarf=false"
export CGO_ENABLED=0
# Build with the machine's Go; a module asking for a newer one fails loudly instead of fetching it.
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
mkdir -p "$BIN"

log() { printf '[tools] %s\n' "$*" >&2; }

# link NAME DIR: point bin/NAME at the versioned binary so callers need one PATH entry.
link() { ln -sfn "$2/$1" "$BIN/$1"; }

timed() {
  local name=$1
  shift
  local start=$SECONDS
  "$@"
  log "$name built in $((SECONDS - start))s"
}

# go_install NAME VERSION PACKAGE: `go install PACKAGE@VERSION` into NAME-VERSION/.
go_install() {
  local name=$1 version=$2 package=$3
  local dir=$TOOLS/$name-$version
  if [[ ! -x $dir/$name ]]; then
    log "building $name $version (go install)"
    timed "$name" env GOBIN="$dir" go install -gcflags "$GCFLAGS" "$package@$version"
  fi
  link "$name" "$dir"
}

install_helm() {
  # The release Makefile's ldflags: without them helm reports version "v3.20" and assumes a
  # Kubernetes v1.20 cluster, so `helm template` rejects kubeVersion constraints. The Kubernetes
  # version stamped is its client libraries', as in release binaries: KUBE_VERSION's here.
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  local pkg
  for pkg in pkg/lint/rules pkg/chartutil; do
    ld+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$KUBE_MINOR"
  done
  kube_build helm "$TOOLS/helm-$HELM_VERSION-k8s-$KUBE_VERSION" helm.sh/helm/v3/cmd/helm "$ld"
}

install_kustomize() {
  kube_build kustomize "$TOOLS/kustomize-$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5 "-s -w"
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
    timed etcd bash -c "cd '$src' && go build -gcflags '$GCFLAGS' -o '$dir/etcd' \
      go.etcd.io/etcd/server/v3"
  fi
  link etcd "$dir"
}

# The command folders of k8s.io/kubernetes this script builds, by binary name.
declare -A KUBE_CMDS=(
  [kube-apiserver]=cmd/kube-apiserver [kubectl]=cmd/kubectl [kubelet]=cmd/kubelet
  [kube-controller-manager]=cmd/kube-controller-manager [kube-scheduler]=cmd/kube-scheduler
  [kube-proxy]=cmd/kube-proxy
)

# kube_module: the throw-away main module all Kubernetes binaries, helm and kustomize build in,
# made once per set of versions: one module graph, so the packages they share compile once.
kube_module() {
  local src=$TOOLS/src/kubernetes-$KUBE_VERSION-helm-$HELM_VERSION-kustomize-$KUSTOMIZE_VERSION
  if [[ ! -f $src/.ready ]]; then
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
    # Imports of every command's package, so that one `go mod tidy` records all their modules.
    {
      printf 'package main\n\nimport (\n\t_ "k8s.io/kubectl/pkg/cmd"\n'
      local name
      for name in "${!KUBE_CMDS[@]}"; do
        [[ $name == kubectl ]] || printf '\t_ "k8s.io/kubernetes/%s/app"\n' "${KUBE_CMDS[$name]}"
      done
      printf ')\n'
    } >"$src/tools.go"
    (cd "$src" && go mod tidy >/dev/null)
    # A main package cannot be imported, so tidy knows nothing of helm's and kustomize's
    # commands; `go get` of every command built here adds them and what go.sum needs for each.
    local commands=("helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
    commands+=("sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION")
    for name in "${!KUBE_CMDS[@]}"; do
      commands+=("k8s.io/kubernetes/${KUBE_CMDS[$name]}@$KUBE_VERSION")
    done
    (cd "$src" && go get "${commands[@]}" >/dev/null 2>"$src/go-get.log") \
      || { cat "$src/go-get.log" >&2; exit 1; }
    touch "$src/.ready"
  fi
  echo "$src"
}

# kube_build NAME DIR PACKAGE LDFLAGS: `go build` PACKAGE in the Kubernetes module into
# DIR/NAME, unless it is there.
kube_build() {
  local name=$1 dir=$2 package=$3 ld=$4 src
  if [[ ! -x $dir/$name ]]; then
    src=$(kube_module)
    mkdir -p "$dir"
    log "building $name into ${dir##*/} (kubelet and kube-apiserver: 5-15 minutes each cold)"
    timed "$name" bash -c "cd '$src' && go build -gcflags '$GCFLAGS' -ldflags '$ld' \
      -o '$dir/$name.tmp' '$package' && mv '$dir/$name.tmp' '$dir/$name'"
  fi
  link "$name" "$dir"
}

# install_kube NAME...: build the named Kubernetes binaries that are missing.
install_kube() {
  # What hack/lib/version.sh stamps into release builds: without it they report v0.0.0-master,
  # kubectl warns about version skew and the server's compatibility version is wrong.
  # -s -w as in hack/lib/golang.sh release builds: no DWARF, a much shorter link.
  local ld="-s -w" pkg name
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for name in "$@"; do
    kube_build "$name" "$TOOLS/kube-$KUBE_VERSION" "k8s.io/kubernetes/${KUBE_CMDS[$name]}" "$ld"
  done
}

install_coredns() { go_install coredns "$COREDNS_VERSION" github.com/coredns/coredns; }

# The operator's go.mod has replace directives, so `go install pkg@version` refuses it: build in a
# writable copy of the module folder, as its Makefile's build-operator does. Its Helm chart and
# CRDs come from the same module folder (hack/operator.sh reads them there).
install_spark_operator() {
  local dir=$TOOLS/spark-operator-$SPARK_OPERATOR_VERSION
  if [[ ! -x $dir/spark-operator ]]; then
    log "building spark-operator $SPARK_OPERATOR_VERSION"
    local mod src=$TOOLS/src/spark-operator-$SPARK_OPERATOR_VERSION
    mod=$(spark_operator_module)
    rm -rf "$src"
    cp -r "$mod" "$src"
    chmod -R u+w "$src"
    mkdir -p "$dir"
    local ld="-X k8s.io/component-base/version.gitVersion=$SPARK_OPERATOR_VERSION"
    ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
    timed spark-operator bash -c "cd '$src' && go build -gcflags '$GCFLAGS' -ldflags '$ld' \
      -o '$dir/spark-operator' ./cmd/operator"
    rm -rf "$src"
  fi
  link spark-operator "$dir"
}

# spark_operator_module: the read-only module folder (chart, CRDs, entrypoint), downloaded once.
spark_operator_module() {
  (cd "$TOOLS" && go mod download -json "github.com/kubeflow/spark-operator/v2@$SPARK_OPERATOR_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
}

# pause: the sandbox container's only process, from build/pause/linux/pause.c inside the
# kubernetes module zip; static, so that its image needs nothing else (hack/images.sh).
install_pause() {
  local dir=$TOOLS/pause-$KUBE_VERSION
  if [[ ! -x $dir/pause ]]; then
    local mod
    mod=$(cd "$TOOLS" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    mkdir -p "$dir"
    gcc -Os -static -DVERSION="$KUBE_VERSION" -o "$dir/pause" "$mod/build/pause/linux/pause.c"
    strip "$dir/pause"
  fi
  link pause "$dir"
}

install_kind() { go_install kind "$KIND_VERSION" sigs.k8s.io/kind; }

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(all)
for t in "${targets[@]}"; do
  case $t in
    helm) install_helm ;;
    kustomize) install_kustomize ;;
    etcd) install_etcd ;;
    kube) install_kube kube-apiserver kubectl ;;
    node) install_kube kubelet kube-controller-manager kube-scheduler kube-proxy ;;
    coredns) install_coredns ;;
    spark-operator) install_spark_operator ;;
    operator-module) spark_operator_module ;;
    pause) install_pause ;;
    kind) install_kind ;;
    all) install_helm; install_kustomize; install_etcd; install_kube kube-apiserver kubectl ;;
    cluster)
      install_helm; install_kustomize; install_etcd; install_coredns; install_spark_operator
      install_kube kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler kube-proxy
      install_pause
      ;;
    *) log "unknown tool $t"; exit 2 ;;
  esac
done
