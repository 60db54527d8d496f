# Container image (issue 4). `make image` is the build users run with Docker; the other targets
# build and test the same docker/Dockerfile here with podman, on a locally made stand-in for the
# apache/spark base, because no container registry is reachable from this machine.

IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)
SPARK_VERSION := $(shell sed -n 's/.*"pyspark==\([0-9.]*\)".*/\1/p' pyproject.toml | head -n1)
IMAGE ?= fruitlens:$(IMAGE_VERSION)
# A docker CLI without a reachable engine (as on this machine) falls back to podman.
DOCKER ?= $(shell docker info >/dev/null 2>&1 && echo docker || command -v podman || echo docker)
# podman's default OCI format drops SHELL (and with it pipefail); docker's format keeps it.
IMAGE_BUILD_FLAGS ?= $(if $(findstring podman,$(DOCKER)),--format docker)
IMAGE_CACHE := $(FRUITLENS_CACHE)/image
STANDIN_IMAGE ?= localhost/fruitlens-standin-base:$(SPARK_VERSION)
# podman reads this instead of /etc/containers: runc (crun is not installed on Debian 12 by
# default and this VM has cgroup v1) and ulimits that fit an unprivileged VM's limits.
export CONTAINERS_CONF := $(IMAGE_CACHE)/containers.conf
IMAGE_TEST_ARGS ?=

.PHONY: image image-tools image-standin-base image-test constraints

image: ## build the image as users do: docker build -f docker/Dockerfile -t fruitlens:VERSION .
	$(DOCKER) build $(IMAGE_BUILD_FLAGS) -f docker/Dockerfile -t $(IMAGE) \
	  --build-arg VERSION=$(IMAGE_VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) .

image-tools: $(CONTAINERS_CONF) ## install podman, buildah and debootstrap (apt, idempotent)
	@missing=""; \
	for tool in podman buildah debootstrap runc newuidmap; do \
	  command -v $$tool >/dev/null || missing=1; \
	done; \
	if [ -n "$$missing" ]; then \
	  $(APT_INSTALL_WITH_RECOMMENDS) \
	    podman buildah debootstrap runc uidmap fuse-overlayfs zip unzip >/dev/null; \
	fi
	@podman --version

$(CONTAINERS_CONF):
	mkdir -p $(dir $@)
	printf '%s\n' '[containers]' \
	  'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]' \
	  '[engine]' 'runtime = "runc"' >$@

image-standin-base: image-tools ## debootstrap a local stand-in for apache/spark:SPARK-python3
	IMAGE_CACHE=$(IMAGE_CACHE) SPARK_VERSION=$(SPARK_VERSION) STANDIN_IMAGE=$(STANDIN_IMAGE) \
	  bash docker/standin/build-base.sh

image-test: venv image-standin-base ## build docker/Dockerfile with podman and run it (slow)
	FRUITLENS_IMAGE_TEST=1 STANDIN_IMAGE=$(STANDIN_IMAGE) IMAGE_CACHE=$(IMAGE_CACHE) \
	  $(BIN)/pytest -v tests/deploy/test_image.py $(IMAGE_TEST_ARGS)

constraints: $(UV) ## re-lock docker/constraints.txt from pyproject.toml
	$(PYTHON) docker/compile_constraints.py --uv $(UV)
