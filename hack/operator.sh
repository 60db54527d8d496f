#!/usr/bin/env bash
# Installs the Kubeflow Spark Operator with its own Helm chart, taken from inside the operator's
# Go module (charts/spark-operator-chart, with its CRDs), as a real install has it: controller
# and mutating/validating webhook on, watching the job namespace. Only the image differs: the
# locally built one (hack/images.sh), never pulled.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NAMESPACE=${K8S_NAMESPACE:-fruitlens}
module=$("$REPO/hack/tools.sh" operator-module)
chart=$module/charts/spark-operator-chart
[[ -f $chart/Chart.yaml ]] || die "no operator chart in $module"

# Requests sized for a 2-CPU node that also runs a driver and two executors; the controller's
# memory limit leaves room for the spark-submit JVM it starts per application.
# spark.serviceAccount/rbac off: the fruitlens chart and kustomize base bring the job's own
# service account and Role (and the job namespace may be deleted and re-created between runs).
# The chart gives the controller and webhook Roles inside the job namespace: it must exist.
kubectl get namespace "$NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$NAMESPACE" >/dev/null
helm upgrade --install spark-operator "$chart" --namespace spark-operator --create-namespace \
  --set image.registry=localhost --set image.repository=spark-operator \
  --set "image.tag=$SPARK_OPERATOR_VERSION" --set image.pullPolicy=IfNotPresent \
  --set webhook.enable=true --set "spark.jobNamespaces={$NAMESPACE}" \
  --set spark.serviceAccount.create=false --set spark.rbac.create=false \
  --set controller.resources.requests.cpu=50m --set controller.resources.requests.memory=256Mi \
  --set controller.resources.limits.memory=1Gi \
  --set webhook.resources.requests.cpu=50m --set webhook.resources.requests.memory=128Mi \
  --set webhook.resources.limits.memory=512Mi \
  --set prometheus.metrics.enable=false \
  --wait --timeout 5m
kubectl -n spark-operator rollout status deployment/spark-operator-controller --timeout=120s
kubectl -n spark-operator rollout status deployment/spark-operator-webhook --timeout=120s
# The webhook answers only once its certificate is in the webhook configurations.
wait_for 120 "operator webhook CA bundle" bash -c \
  "kubectl get mutatingwebhookconfiguration spark-operator-webhook \
    -o jsonpath='{.webhooks[0].clientConfig.caBundle}' | grep -q ."
log "Spark Operator $SPARK_OPERATOR_VERSION installed (webhook on), watching namespace $NAMESPACE"
