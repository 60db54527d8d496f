# Shared settings of the local cluster scripts (sourced, not run). One place for every address,
# path and name, so that cluster-up, cluster-down, images, operator and s3 cannot disagree.
#
# Network layout (the workplace rule: pods and services only on bridges this script makes,
# nothing sent anywhere else):
#   fl-pods0  bridge 10.244.0.1/24: pods (CNI bridge, ipMasq false), and the node's own address:
#             the API server, kubelet, CoreDNS and the S3 server listen on 10.244.0.1 only
#   fl-svc0   empty bridge the service range 10.96.0.0/24 is routed to, so a service address
#             that kube-proxy did not translate ends there instead of on the default route
#   FORWARD   packets from or to fl-pods0 are forwarded only within fl-pods0 (chain FRUITLENS-E2E)
# shellcheck shell=bash disable=SC2034

CACHE=${FRUITLENS_CACHE:-$HOME/.cache/fruitlens}
TOOLS=${FRUITLENS_TOOLS:-$CACHE/tools}
export PATH=$TOOLS/bin:$PATH
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Persistent between runs: containerd's image store (imports are minutes), nothing else.
E2E_CACHE=$CACHE/e2e
# Everything a cluster run creates; cluster-down.sh removes it (logs are kept in E2E_LOGS).
E2E_RUN=${FRUITLENS_E2E_RUN:-/run/fruitlens-e2e}
E2E_LOGS=$E2E_CACHE/logs
PKI=$E2E_RUN/pki
KUBECONFIG_ADMIN=$E2E_RUN/admin.kubeconfig
CONTAINERD_SOCK=$E2E_RUN/containerd/containerd.sock
KUBELET_ROOT=$E2E_RUN/kubelet

NODE_NAME=fruitlens-node
POD_BRIDGE=fl-pods0
SVC_BRIDGE=fl-svc0
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1
SVC_CIDR=10.96.0.0/24
KUBERNETES_SVC_IP=10.96.0.1
CLUSTER_DOMAIN=cluster.local
FW_CHAIN=FRUITLENS-E2E
APISERVER=https://$NODE_IP:6443
ETCD_CLIENT=http://127.0.0.1:23790
ETCD_PEER=http://127.0.0.1:23800

# Images built locally and imported into containerd (hack/images.sh); never pulled. Tags are not
# "latest", so IfNotPresent never looks for a registry either.
KUBE_VERSION=$(sed -n 's/^KUBE_VERSION=${KUBE_VERSION:-\(.*\)}$/\1/p' "$REPO/hack/tools.sh")
SPARK_OPERATOR_VERSION=$(sed -n \
  's/^SPARK_OPERATOR_VERSION=${SPARK_OPERATOR_VERSION:-\(.*\)}$/\1/p' "$REPO/hack/tools.sh")
PROJECT_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -n1)
SPARK_VERSION=$(sed -n 's/.*"pyspark==\([0-9.]*\)".*/\1/p' "$REPO/pyproject.toml" | head -n1)
PAUSE_IMAGE=localhost/pause:$KUBE_VERSION
OPERATOR_IMAGE=localhost/spark-operator:$SPARK_OPERATOR_VERSION
STANDIN_IMAGE=${STANDIN_IMAGE:-localhost/fruitlens-standin-base:$SPARK_VERSION}
# The name the chart's kind values and the kind overlay use (docker.io/library/fruitlens:...).
PROJECT_IMAGE=docker.io/library/fruitlens:$PROJECT_VERSION

export KUBECONFIG=$KUBECONFIG_ADMIN
export CONTAINERS_CONF=${CONTAINERS_CONF:-$CACHE/image/containers.conf}

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what not ready after ${seconds}s (logs: $E2E_LOGS)"
    sleep 1
  done
}

# start NAME COMMAND...: run a component in the background, its PID in $E2E_RUN/pids/NAME.
start() {
  local name=$1
  shift
  mkdir -p "$E2E_RUN/pids" "$E2E_LOGS"
  setsid "$@" >"$E2E_LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$E2E_RUN/pids/$name"
  log "$name started (pid $!, log $E2E_LOGS/$name.log)"
}
