# `make e2e`: the SparkApplication end to end on a single-node Kubernetes built here (issue 11).
# Machinery in hack/ (one script per concern), the runs in tests/e2e/test_cluster.py. Needs root (containerd,
# kubelet, bridges) and about 9 GiB of memory free while the three runs go.
#   make e2e              apt, Go builds, images, cluster, operator, S3, the runs; then teardown
#   make e2e E2E_KEEP=1   leave the cluster up afterwards to look inside (docs/DEPLOY.md)
#   make e2e-down         take a kept cluster down and restore the machine

E2E_KEEP ?=
E2E_PYTEST_ARGS ?=

.PHONY: e2e e2e-root e2e-tools e2e-images e2e-up e2e-down

# First prerequisite of every target below that changes the machine: without root, one line
# saying so, before minutes of builds end in apt's or containerd's permission errors.
e2e-root:
	@[ "$$(id -u)" -eq 0 ] || { echo "make e2e needs root: it runs containerd, kubelet and the pods' network on this machine (sudo make e2e)" >&2; exit 1; }

e2e-tools: e2e-root ## build every Kubernetes binary, CoreDNS and the Spark Operator (once per cache)
	hack/apt.sh
	hack/tools.sh cluster

e2e-images: image-tools e2e-tools ## build the project, operator and pause images with podman
	hack/images.sh build

e2e-up: e2e-root venv e2e-images ## bring the local cluster up with the operator and S3 (no runs)
	hack/cluster-up.sh
	hack/operator.sh
	hack/s3.sh up $(BIN)/python

e2e-down: e2e-root ## take the local cluster down: processes, network, iptables chains, mounts
	hack/cluster-down.sh

e2e: e2e-root venv e2e-images ## end to end on a local single-node cluster: helm, kustomize, submit, a fault
	@set -e; \
	hack/cluster-up.sh; \
	if [ -z "$(E2E_KEEP)" ]; then trap 'hack/cluster-down.sh' EXIT; fi; \
	hack/operator.sh; \
	hack/s3.sh up $(BIN)/python; \
	source hack/lib.sh; \
	FRUITLENS_E2E=1 FRUITLENS_E2E_S3=http://$$NODE_IP:5000 \
	  $(BIN)/python -m pytest -v tests/e2e/test_cluster.py $(E2E_PYTEST_ARGS)
