#!/usr/bin/env bash
# The local cluster's certificates and kubeconfigs, made with openssl into $E2E_RUN/pki (removed
# by cluster-down.sh): a CA, the API server's serving certificate, one client certificate per
# component (its user and groups are what RBAC sees), and the service-account signing key.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

mkdir -p "$PKI"
cd "$PKI"
umask 077

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=fruitlens-e2e-ca \
  -keyout ca.key -out ca.crt 2>/dev/null

# cert NAME SUBJECT [SAN]: a key and a CA-signed certificate (client, or server when SAN is set).
cert() {
  local name=$1 subject=$2 san=${3:-}
  openssl req -new -newkey rsa:2048 -nodes -subj "$subject" -keyout "$name.key" -out "$name.csr" \
    2>/dev/null
  local ext="keyUsage=critical,digitalSignature,keyEncipherment"
  if [[ -n $san ]]; then
    ext+=$'\n'"extendedKeyUsage=serverAuth,clientAuth"$'\n'"subjectAltName=$san"
  else
    ext+=$'\n'"extendedKeyUsage=clientAuth"
  fi
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile <(printf '%s\n' "$ext") -out "$name.crt" 2>/dev/null
  rm -f "$name.csr"
}

cert apiserver /CN=kube-apiserver \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,IP:127.0.0.1,IP:$KUBERNETES_SVC_IP,IP:$NODE_IP"
cert admin /O=system:masters/CN=fruitlens-e2e-admin
# The API server's identity towards kubelets (logs, exec, port-forward).
cert apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "DNS:$NODE_NAME,IP:$NODE_IP"
cert controller-manager /CN=system:kube-controller-manager
cert scheduler /CN=system:kube-scheduler
cert kube-proxy /CN=system:kube-proxy
cert coredns /CN=system:coredns
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

b64() { base64 -w0 "$1"; }
for user in admin kubelet controller-manager scheduler kube-proxy coredns; do
  cat >"$E2E_RUN/$user.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster: {server: "$APISERVER", certificate-authority-data: $(b64 ca.crt)}
users:
  - name: $user
    user: {client-certificate-data: $(b64 "$user.crt"), client-key-data: $(b64 "$user.key")}
contexts:
  - name: e2e
    context: {cluster: e2e, user: $user, namespace: default}
current-context: e2e
EOF
done
log "certificates and kubeconfigs in $E2E_RUN"
