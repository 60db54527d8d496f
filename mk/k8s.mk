# Kubernetes deployment: tools, checks, and the kind / Helm workflows (docs/DEPLOY.md).
# Tools are built from the Go module proxy into $(FRUITLENS_CACHE)/tools, never into the repo,
# by hack/tools.sh: the same script, at the same Kubernetes version, builds the local cluster of
# `make e2e` (mk/e2e.mk). A second `make k8s-tools` only checks that they are there.

K8S_TOOLS := $(FRUITLENS_CACHE)/tools/bin
export PATH := $(K8S_TOOLS):$(PATH)
K8S_NAMESPACE ?= fruitlens
KIND_CLUSTER ?= fruitlens
IMAGE ?= fruitlens:0.1.0
HELM_RELEASE ?= fruitlens
HELM_VALUES ?= helm/fruitlens/values-eks.yaml
SPARK_OPERATOR_VERSION ?= 2.5.2
KIND_E2E_TIMEOUT ?= 1800
# checkov pins its own dependencies tightly (they conflict with the project's), so it lives in
# a venv of its own in the cache; the tests find it through FRUITLENS_CHECKOV.
CHECKOV_VERSION ?= 3.3.30
CHECKOV_VENV := $(FRUITLENS_CACHE)/tools/checkov-$(CHECKOV_VERSION)
export FRUITLENS_CHECKOV := $(CHECKOV_VENV)/bin/checkov
# `make test` runs tests/deploy, which need these tools (a no-op once they are cached).
TEST_TOOLS += k8s-tools checkov

.PHONY: checkov k8s-tools k8s-check k8s-base kind-up kind-load kind-e2e kind-down helm-install

k8s-tools: ## build helm, kustomize, kubectl, etcd, kube-apiserver into the cache (once)
	@hack/tools.sh all

checkov: $(FRUITLENS_CHECKOV) ## install checkov (manifest security scanner) into the cache

$(FRUITLENS_CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

k8s-check: venv k8s-tools checkov ## lint and validate the chart, kustomize overlays and policies
	$(BIN)/pytest tests/deploy $(PYTEST_ARGS)

k8s-base: k8s-tools ## regenerate k8s/base from the Helm chart
	$(PYTHON) hack/render-base.py

kind-up: ## kind cluster (kindest/node:v1.35.0) with the Spark Operator 2.5.2 watching fruitlens
	@hack/tools.sh kind helm
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --config k8s/kind/cluster.yaml --wait 120s
	helm repo add spark-operator https://kubeflow.github.io/spark-operator --force-update
	helm upgrade --install spark-operator spark-operator/spark-operator --version $(SPARK_OPERATOR_VERSION) \
	  --namespace spark-operator --create-namespace --set 'spark.jobNamespaces={$(K8S_NAMESPACE)}' \
	  --set webhook.enable=true --wait

kind-load: ## load the locally built image into the kind nodes (no registry involved)
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)

kind-down: ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

helm-install: ## helm upgrade --install the job (HELM_VALUES=helm/fruitlens/values-kind.yaml for kind)
	helm upgrade --install $(HELM_RELEASE) helm/fruitlens --namespace $(K8S_NAMESPACE) --create-namespace -f $(HELM_VALUES)

# Runs only where a Docker engine and kind exist; elsewhere it says so and succeeds, so that
# `make` on a machine without Docker is not a failure of the project.
kind-e2e: ## end to end on kind: image, cluster, moto S3, submit, check the committed output
	@if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then \
	  echo "skipped: no Docker engine"; exit 0; fi; \
	set -e; \
	$(MAKE) --no-print-directory venv image kind-up kind-load; \
	kubectl apply -k k8s/kind/s3-server; kubectl apply -k k8s/overlays/kind; \
	kubectl -n $(K8S_NAMESPACE) rollout status deployment/s3 --timeout=300s; \
	mkdir -p out/kind; kustomize build k8s/overlays/kind > out/kind/manifests.yaml; \
	PYTHONPATH=tests $(BIN)/python -m support.deploy.kind_e2e --namespace $(K8S_NAMESPACE) --manifest out/kind/manifests.yaml \
	  --dataset "$(FRUITLENS_DATASET)" --timeout $(KIND_E2E_TIMEOUT)
