#!/usr/bin/env bash
# The local S3 server of the cluster: moto's standalone server (the one the test suite uses) as a
# host process bound to the node address only, and a Service "s3" in the job namespace whose
# EndpointSlice points at it. Pods reach it as http://s3.fruitlens.svc.cluster.local:5000, the
# endpoint the kind values and overlay name; the host reaches it as http://$NODE_IP:5000.
#
#   hack/s3.sh up [PYTHON]   (PYTHON: an interpreter with moto[server]; default .venv/bin/python)
#   hack/s3.sh down
set -euo pipefail
source "$(dirname "$0")/lib.sh"

S3_PORT=5000
NAMESPACE=${K8S_NAMESPACE:-fruitlens}
BUCKET=fruitlens

up() {
  local python=${1:-$REPO/.venv/bin/python}
  [[ -d $E2E_RUN/pids ]] || die "no local cluster: run hack/cluster-up.sh first"
  if [[ ! -f $E2E_RUN/pids/s3 ]]; then
    start s3 "$python" -m moto.server -H "$NODE_IP" -p "$S3_PORT"
    wait_for 60 "moto S3 server" curl -sf -o /dev/null "http://$NODE_IP:$S3_PORT/"
    # The job's bucket, with the policy kind's S3 server applies too (k8s/kind/s3-server):
    # unsigned requests may read private objects only if the bucket policy allows it.
    # With curl's default form content type, moto's web framework hands it an empty body.
    curl -sf -X PUT -o /dev/null -H 'Content-Type: application/xml' \
      "http://$NODE_IP:$S3_PORT/$BUCKET" --data-binary \
      "<CreateBucketConfiguration><LocationConstraint>eu-west-3</LocationConstraint></CreateBucketConfiguration>"
    curl -sf -X PUT -o /dev/null -H 'Content-Type: application/json' \
      "http://$NODE_IP:$S3_PORT/$BUCKET?policy" \
      --data-binary "@$REPO/k8s/kind/s3-server/bucket-policy.json"
  fi
  kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE" >/dev/null
  kubectl -n "$NAMESPACE" apply -f - >/dev/null <<EOF
# The S3 server runs on the node, outside any pod: a Service without selector and its endpoint.
apiVersion: v1
kind: Service
metadata:
  name: s3
  labels: {app.kubernetes.io/name: s3-server, app.kubernetes.io/part-of: fruitlens-e2e}
spec:
  ports:
    - {name: s3, port: $S3_PORT, targetPort: $S3_PORT, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: s3-node
  labels:
    kubernetes.io/service-name: s3
    endpointslice.kubernetes.io/managed-by: fruitlens-e2e
addressType: IPv4
ports:
  - {name: s3, port: $S3_PORT, protocol: TCP}
endpoints:
  - addresses: ["$NODE_IP"]
    conditions: {ready: true}
EOF
  log "S3 (moto) at http://$NODE_IP:$S3_PORT, in the cluster as http://s3.$NAMESPACE.svc.$CLUSTER_DOMAIN:$S3_PORT"
}

down() {
  local file=$E2E_RUN/pids/s3
  [[ -f $file ]] || return 0
  kill -TERM "$(<"$file")" 2>/dev/null || true
  rm -f "$file"
}

case ${1:-} in
  up) up "${2:-}" ;;
  down) down ;;
  *) die "usage: hack/s3.sh up [PYTHON] | down" ;;
esac
