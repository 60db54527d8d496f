#!/usr/bin/env bash
# Takes the local cluster down and restores the machine: every process it started (by the PIDs
# it recorded), the containers and their mounts, kube-proxy's iptables chains
# (`kube-proxy --cleanup`), the firewall chain, route, bridges and network namespaces it made,
# and $E2E_RUN. Safe to run twice, and after a half-finished cluster-up. Kept: containerd's image
# store and the logs under $FRUITLENS_CACHE/e2e.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

# stop NAME: SIGTERM, then SIGKILL after 20 s, to the process group cluster-up.sh started.
stop() {
  local file=$E2E_RUN/pids/$1 pid
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    # kube-apiserver may ignore SIGTERM once etcd is gone.
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$file"
  log "$1 stopped"
}

stop s3
# The API server before etcd; kubelet before containerd, so that it does not restart pods.
for name in coredns kube-proxy kube-scheduler kube-controller-manager kubelet kube-apiserver etcd; do
  stop "$name"
done

# Containers: stop and remove every task and container in this containerd's CRI namespace
# (which unmounts their root filesystems), noting first the network namespaces of their pods.
netns=()
if [[ -S $CONTAINERD_SOCK ]]; then
  for container in $(ctr_ containers ls -q 2>/dev/null); do
    while read -r path; do
      [[ -n $path ]] && netns+=("$(basename "$path")")
    done < <(ctr_ containers info "$container" 2>/dev/null | python3 -c '
import json, sys
spec = json.load(sys.stdin).get("Spec") or {}
for ns in spec.get("linux", {}).get("namespaces", []):
    if ns.get("type") == "network" and ns.get("path"):
        print(ns["path"])' 2>/dev/null)
  done
  for task in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks kill -s KILL "$task" >/dev/null 2>&1
  done
  sleep 2
  for task in $(ctr_ tasks ls -q 2>/dev/null); do
    ctr_ tasks delete -f "$task" >/dev/null 2>&1
  done
  for container in $(ctr_ containers ls -q 2>/dev/null); do
    ctr_ containers delete "$container" >/dev/null 2>&1
  done
fi
# containerd-shim processes are children of containerd's group only until they re-parent;
# they carry the socket path of this cluster in their command line.
for pid in $(pgrep -f -- "-address $CONTAINERD_SOCK" 2>/dev/null); do
  kill -KILL "$pid" 2>/dev/null
done
stop containerd

# kube-proxy's KUBE-* chains in every table it used.
if command -v kube-proxy >/dev/null; then
  kube-proxy --cleanup >/dev/null 2>&1 && log "kube-proxy iptables rules cleaned up"
fi
# The kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), which
# kube-proxy --cleanup leaves: unhook them from the built-in chains, then flush and delete every
# KUBE-* chain left. Only this cluster's kubelet and kube-proxy make such chains here.
for cmd in iptables ip6tables; do
  for table in filter nat mangle; do
    "$cmd" -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' |
      while read -r rule; do
        # iptables-save syntax, quoted comments included: let the shell split it as iptables would.
        eval "$cmd -t $table -D ${rule#-A }" 2>/dev/null
      done
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      "$cmd" -t "$table" -F "$chain" 2>/dev/null
    done
    for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
      "$cmd" -t "$table" -X "$chain" 2>/dev/null
    done
  done
done
if iptables -C FORWARD -j "$FW_CHAIN" 2>/dev/null; then
  iptables -D FORWARD -j "$FW_CHAIN"
fi
iptables -F "$FW_CHAIN" 2>/dev/null && iptables -X "$FW_CHAIN" 2>/dev/null

# The pods' network namespaces (containerd made them under /run/netns); deleting one removes
# the veth pair it held. Only those of this cluster's containers: podman makes its own.
for ns in $(printf '%s\n' "${netns[@]}" | sort -u); do
  ip netns delete "$ns" 2>/dev/null && log "network namespace $ns removed"
done
ip route del "$SVC_CIDR" 2>/dev/null
for bridge in "$POD_BRIDGE" "$SVC_BRIDGE"; do
  ip link show "$bridge" >/dev/null 2>&1 && ip link delete "$bridge"
done

# Kubelet's volume mounts (emptyDir, projected tokens, configmaps) and containerd's rootfs
# mounts, deepest first.
for root in "$KUBELET_ROOT" "$E2E_RUN" "$E2E_CACHE/containerd"; do
  awk -v root="$root/" 'index($2, root) == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r mount; do umount -l "$mount" 2>/dev/null; done
done
rm -rf "$E2E_RUN"
log "cluster down; machine restored (logs kept in $E2E_LOGS)"
