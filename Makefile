# fruitlens: every set-up step a fresh machine needs lives here, so that the README's two
# commands (`make run`, `make test`) work on a clean clone. Downloads and builds are cached
# outside the repository (FRUITLENS_CACHE) so a second run is fast.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FRUITLENS_CACHE ?= $(HOME)/.cache/fruitlens
export PIP_CACHE_DIR ?= $(FRUITLENS_CACHE)/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# uv installs the venv (and locks the image's constraints, mk/image.mk): from its cache it
# hard-links the 140 packages, where pip took a minute.
UV_VERSION ?= 0.13.8
UV_HOME := $(FRUITLENS_CACHE)/uv-$(UV_VERSION)
UV := $(UV_HOME)/bin/uv
export UV_CACHE_DIR ?= $(FRUITLENS_CACHE)/uv
# Bytecode is cached as Python does by default: each module compiled when a process first
# imports it. This project's CI machines set PYTHONDONTWRITEBYTECODE, under which every process
# would compile TensorFlow again; compiling the whole venv at install instead (uv
# --compile-bytecode) cost 35 CPU-s in every fresh clone, for 17 700 files of which the tests
# import 4 300 (8 CPU-s).
unexport PYTHONDONTWRITEBYTECODE
# Tests and the demo read the shared Fruits-360 subset through this setting.
export FRUITLENS_DATASET ?= $(abspath ../shared/datasets/fruits360)

DATA ?=
WEIGHTS ?= imagenet
OUT ?= $(CURDIR)/out/run
PYTEST_ARGS ?=
RUN_ARGS ?=
LINT_PATHS := app tests hack $(wildcard bench)
# Tools the test suite needs beyond the venv; mk/*.mk fragments append their install targets
# (TEST_TOOLS: the deployment lane's, E2E_TEST_TOOLS: the e2e lane's).
TEST_TOOLS :=
E2E_TEST_TOOLS :=

.PHONY: help venv run test test-core test-e2e test-deploy jars lint format bench clean

# Debian packages a target needs (chromium, BLAS/LAPACK, podman), installed as root or through
# sudo: `$(APT_INSTALL) PACKAGE...`, or `$(APT_INSTALL_WITH_RECOMMENDS) PACKAGE...` where the
# recommended packages are needed too (podman's). `make test`'s lanes run side by side and two
# of them may install at once on a fresh machine, where the second apt-get would fail on apt's
# lock: flock makes them take turns.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_INSTALL_WITH_RECOMMENDS = flock "$${TMPDIR:-/tmp}/fruitlens-apt.lock" $(SUDO) \
	env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -qq && apt-get install -y -qq "$$@"' \
	apt-install
APT_INSTALL = $(APT_INSTALL_WITH_RECOMMENDS) --no-install-recommends

# Fragments per concern (image, k8s, bench...); they may append to TEST_TOOLS, so they are read
# before the test rule expands its prerequisites.
-include mk/*.mk

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv with fruitlens and its test tools

# The cache alone first: with every package in it, resolving needs no round trip to the index
# (2 s instead of 11 with revalidation); a new or changed requirement falls back to the index.
UV_INSTALL = $(UV) pip install --quiet --python $(BIN)/python
$(VENV)/.installed: pyproject.toml | $(UV)
	$(PYTHON) -m venv $(VENV)
	$(UV_INSTALL) --offline -e '.[test]' 2>/dev/null || $(UV_INSTALL) -e '.[test]'
	touch $@

$(UV):
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet uv==$(UV_VERSION)

# Linters are not tests: they run here, and `make test` runs this first. helm lint and checkov
# stay in tests/deploy: they validate the rendered chart and manifests against the cluster's and
# the security policy's rules, with tools that the deploy lane builds.
YAMLLINT_RULES := {extends: relaxed, rules: {line-length: {max: 140}}}
YAML_LINT_PATHS := k8s helm/fruitlens/Chart.yaml $(wildcard helm/fruitlens/values*.yaml)

lint: venv ## ruff (lint, format), yamllint (k8s/, chart values), hadolint (Dockerfile)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/yamllint -s -d '$(YAMLLINT_RULES)' $(YAML_LINT_PATHS)
	$(BIN)/hadolint --no-color --failure-threshold style docker/Dockerfile

format: venv ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

run: venv jars native-linalg ## the main job: DATA=folder|s3a://... (default: fetch the pinned sample), WEIGHTS=, OUT=
	@set -euo pipefail; \
	data="$(DATA)"; \
	if [ -z "$$data" ]; then data=$$($(BIN)/python -m fruitlens.sample); fi; \
	$(BIN)/fruitlens run --input "$$data" --output "$(OUT)" --weights "$(WEIGHTS)" --overwrite $(RUN_ARGS)

# `make test` runs `make lint`, then three lanes side by side, one per kind of cost:
# - core: tests/unit and tests/spark in two pytest processes (pytest-xdist), each with one
#   in-process Spark session; a file's tests stay in one process, so its module fixtures (a
#   whole run) are made once (the venv, the s3a jars);
# - e2e: tests/e2e, fruitlens as a process (a JVM per run, S3 over HTTP, a headless browser),
#   in two pytest processes: its S3 fault story waits on retries and timeouts for minutes;
# - deploy: the Kubernetes tool builds (about 4.5 minutes of both cores alone, 8 CPU-minutes,
#   once per cache), then tests/deploy.
# On 2 cores the lanes fill each other's idle time (JVM and TensorFlow start-up, S3 round trips,
# process waits); with a warm cache the deploy lane's build is a no-op. Each lane measures the
# coverage of app/ into its own file; `make test` combines them and prints the table.
LANES := core e2e deploy
CORE_TESTS := tests/unit tests/spark -n 2 --dist loadfile
# --no-loadscope-reorder: by default xdist hands out the files with the most tests first, which
# put the two longest files (the S3 run with its erasures, the S3 fault story) and spark-submit
# on one process while the other sat idle for 3.5 minutes; in the folder's order they split.
E2E_TESTS := tests/e2e -n 2 --dist loadfile --no-loadscope-reorder
DEPLOY_TESTS := tests/deploy
# A bare --cov measures what pyproject.toml's [tool.coverage.run] names: --cov=fruitlens named the
# package a second time, and coverage then warned at every lane's end that it had never been
# measured (the second name is never matched).
COVERAGE := --cov --cov-report=
# pytest exits 5 when a -k selection leaves one lane with no test: not a failure.
PYTEST_LANE = COVERAGE_FILE=$(CURDIR)/.coverage.$(2) $(BIN)/python -m pytest $(1) $(COVERAGE) \
	$(PYTEST_ARGS) || [ $$? -eq 5 ]

# No --output-sync: it would hold each lane's pytest output until that lane ends (minutes of
# silence on CI); the lanes' lines interleave instead.
test: ## lint, then every test but the cluster's, installs included (CI runs it, then e2e); PYTEST_ARGS= go to every lane
	rm -f .coverage $(addprefix .coverage.,$(LANES))
	$(MAKE) --no-print-directory -j3 $(addprefix test-,$(LANES))
	$(BIN)/coverage combine --quiet --keep $$(ls $(addprefix .coverage.,$(LANES)) 2>/dev/null)
	$(BIN)/coverage report

# The s3a jars, fetched once for both Spark lanes, and the local driver's class archive
# (app/fruitlens/jvm_archive.py: 2 s off each JVM start), recorded once: both cached, so this
# is a no-op when warm.
jars: venv
	$(BIN)/fruitlens jars >/dev/null
	$(BIN)/python -m fruitlens.jvm_archive >/dev/null

test-core: lint jars native-linalg
	$(call PYTEST_LANE,$(CORE_TESTS),core)

test-e2e: lint jars native-linalg $(E2E_TEST_TOOLS)
	$(call PYTEST_LANE,$(E2E_TESTS),e2e)

test-deploy: venv $(TEST_TOOLS)
	$(call PYTEST_LANE,$(DEPLOY_TESTS),deploy)

clean: ## remove the virtualenv and local outputs (caches outside the repo stay)
	rm -rf $(VENV) out .pytest_cache .coverage .coverage.*

