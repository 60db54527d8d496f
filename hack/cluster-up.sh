#!/usr/bin/env bash
# A single-node Kubernetes as local processes: containerd (Debian) with runc and the CNI bridge,
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy (iptables)
# and CoreDNS, all built by hack/tools.sh at one version. Flags follow Kubernetes' own
# hack/local-up-cluster.sh; the settings this machine needs are explained where they are set
# (see also ../shared/REFERENCE-k8s.md). hack/cluster-down.sh undoes every step.
#
# Images must be built first (hack/images.sh build); they are imported here.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[[ $(id -u) == 0 ]] || die "the local cluster runs containerd and kubelet: run it as root"
if [[ -d $E2E_RUN/pids ]]; then
  die "a local cluster is already up ($E2E_RUN): run hack/cluster-down.sh (make e2e-down) first"
fi
for tool in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy \
  coredns kubectl helm; do
  command -v "$tool" >/dev/null || die "$tool not built: run hack/tools.sh cluster"
done
for tool in containerd runc iptables conntrack /usr/lib/cni/bridge; do
  command -v "$tool" >/dev/null || die "$tool missing: run hack/apt.sh"
done
mkdir -p "$E2E_RUN" "$E2E_LOGS" "$E2E_CACHE"
# Anything that fails from here on leaves a half cluster: take it down again.
trap 'log "failed: tearing down"; "$REPO/hack/cluster-down.sh"' ERR

# --- network ----------------------------------------------------------------------------------
# The pod bridge exists before the CNI plugin sees it, so that the node address the control
# plane binds to is there from the start; the plugin reuses a bridge of the same name.
ip link add "$POD_BRIDGE" type bridge
ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$POD_BRIDGE"
ip link set "$POD_BRIDGE" up
ip link add "$SVC_BRIDGE" type bridge
ip link set "$SVC_BRIDGE" up
ip route add "$SVC_CIDR" dev "$SVC_BRIDGE" src "$NODE_IP"
# Forwarding on the pod bridge only (pod -> service -> pod is routed through the host after
# kube-proxy's DNAT); the machine's own interfaces keep forwarding off.
echo 1 >"/proc/sys/net/ipv4/conf/$POD_BRIDGE/forwarding"
iptables -N "$FW_CHAIN"
iptables -A "$FW_CHAIN" -i "$POD_BRIDGE" -o "$POD_BRIDGE" -j RETURN
iptables -A "$FW_CHAIN" -i "$POD_BRIDGE" -j DROP
iptables -A "$FW_CHAIN" -o "$POD_BRIDGE" -j DROP
iptables -I FORWARD 1 -j "$FW_CHAIN"
log "network: $POD_BRIDGE $NODE_IP ($POD_CIDR), services $SVC_CIDR routed to $SVC_BRIDGE"

"$REPO/hack/pki.sh"

# --- containerd -------------------------------------------------------------------------------
mkdir -p "$E2E_RUN/containerd" "$E2E_RUN/cni/net.d" "$E2E_CACHE/containerd"
cat >"$E2E_RUN/cni/net.d/10-fruitlens.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "fruitlens-e2e",
  "plugins": [
    {
      "type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$E2E_RUN/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
# restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, and without it every sandbox fails
# with "can't get final child's PID from pipe". cgroupfs: no systemd on this machine. The image
# store (root) persists in the cache so that a second run does not re-import gigabytes.
cat >"$E2E_RUN/containerd/config.toml" <<EOF
version = 2
root = "$E2E_CACHE/containerd"
state = "$E2E_RUN/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$E2E_RUN/containerd/containerd.sock.ttrpc"
[debug]
  address = "$E2E_RUN/containerd/debug.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$E2E_RUN/cni/net.d"
EOF
start containerd containerd --config "$E2E_RUN/containerd/config.toml"
wait_for 60 containerd ctr --address "$CONTAINERD_SOCK" version
"$REPO/hack/images.sh" import

# --- control plane ----------------------------------------------------------------------------
start etcd etcd --name e2e --data-dir "$E2E_RUN/etcd" \
  --listen-client-urls "$ETCD_CLIENT" --advertise-client-urls "$ETCD_CLIENT" \
  --listen-peer-urls "$ETCD_PEER" --initial-advertise-peer-urls "$ETCD_PEER" \
  --initial-cluster "e2e=$ETCD_PEER" --log-level warn
wait_for 60 etcd curl -sf "$ETCD_CLIENT/health"

# --kubelet-preferred-address-types: reach the kubelet at the node address; the node's name
# resolves nowhere, and looking it up would send a query to the machine's resolver.
start kube-apiserver kube-apiserver \
  --etcd-servers="$ETCD_CLIENT" \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=6443 \
  --service-cluster-ip-range="$SVC_CIDR" \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --kubelet-preferred-address-types=InternalIP \
  --profiling=false
# The controller manager exits on a forbidden read while RBAC is still being bootstrapped.
wait_for 120 kube-apiserver kubectl get --raw /readyz

start kube-controller-manager kube-controller-manager \
  --kubeconfig="$E2E_RUN/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$E2E_RUN/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$E2E_RUN/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range="$SVC_CIDR" --profiling=false
start kube-scheduler kube-scheduler \
  --kubeconfig="$E2E_RUN/scheduler.kubeconfig" \
  --authentication-kubeconfig="$E2E_RUN/scheduler.kubeconfig" \
  --authorization-kubeconfig="$E2E_RUN/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --profiling=false

# --- node -------------------------------------------------------------------------------------
# Pods get CoreDNS only: no upstream resolver, so no name ever leaves the machine.
printf '# fruitlens e2e: no upstream resolver\n' >"$E2E_RUN/resolv.conf"
cat >"$E2E_RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
# No systemd here, and cgroup v1: 1.35 refuses v1 unless told otherwise.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# The hard nofile limit of this machine's root (it lacks CAP_SYS_RESOURCE).
maxOpenFiles: 20000
clusterDNS: [$NODE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $E2E_RUN/resolv.conf
# A shared development disk: evict only when it is really full, and never collect the imported
# images (they cannot be pulled back).
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# Container logs with the rest of the cluster's state, not in the machine's /var/log.
podLogsDir: $E2E_RUN/pod-logs
EOF
start kubelet kubelet --config="$E2E_RUN/kubelet.yaml" \
  --kubeconfig="$E2E_RUN/kubelet.kubeconfig" --root-dir="$KUBELET_ROOT" \
  --node-ip="$NODE_IP" --hostname-override="$NODE_NAME"
wait_for 120 "node $NODE_NAME" kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s

cat >"$E2E_RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $E2E_RUN/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
# No IPVS in this kernel.
mode: iptables
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts on the node address only (localhost ones would need route_localnet).
nodePortAddresses: [$NODE_IP/32]
# Leave the machine's conntrack settings as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start kube-proxy kube-proxy --config="$E2E_RUN/kube-proxy.yaml"

# CoreDNS as a host process on the node address: the kubernetes plugin and nothing else (no
# forward: a name outside cluster.local gets no answer instead of reaching an upstream).
kubectl apply -f "$REPO/hack/manifests/coredns-rbac.yaml" >/dev/null
cat >"$E2E_RUN/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $E2E_RUN/coredns.kubeconfig e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
EOF
start coredns coredns -conf "$E2E_RUN/Corefile"
wait_for 60 coredns curl -sf http://127.0.0.1:18181/ready
wait_for 60 "default service account" kubectl get serviceaccount default
trap - ERR
log "cluster up: export KUBECONFIG=$KUBECONFIG_ADMIN"
