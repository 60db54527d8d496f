# Benchmarks (issues 6 and 12): fruitlens against bare Keras (float32 and bf16), OpenVINO, naive
# Spark and the float32 / bf16 compute rooflines, plus local[1] vs local[2], peak memory at
# 1x/4x/8x and an --incremental re-run, in one invocation.
# Writes bench/results/<timestamp>.json and bench/results/latest.json; see bench/README.md.
# About 45 minutes on a quiet 2-core AMX machine with the defaults (--base 1500 images; the bf16
# quality check on the whole shared subset is 17 of them);
# BENCH_ARGS="--base 300 --scales 1,2" gives a quick smoke run.
BENCH_ARGS ?=
LINALG_ARGS ?=
# OpenVINO is a ceiling to compare against, not a dependency of the job: it gets its own venv in
# the cache, never the project's.
OPENVINO_VENV := $(FRUITLENS_CACHE)/bench/openvino-venv
OPENVINO_VERSION := 2026.4.1
# NNCF quantizes the OpenVINO model to int8 (the bench's `openvino` step, precision i8).
NNCF_VERSION := 3.4.0

.PHONY: bench bench-openvino bench-linalg

bench: venv bench-openvino ## benchmark suite -> bench/results/latest.json (~45 min on 2 cores; BENCH_ARGS=)
	$(BIN)/python bench/run_bench.py --openvino-python $(OPENVINO_VENV)/bin/python $(BENCH_ARGS)

# PCA's fit with every BLAS/LAPACK installed (Java, Debian's reference, OpenBLAS), side by
# side, for mk/linalg.mk's choice (speed only; it does not test thread safety). About 2
# minutes; LINALG_ARGS= go to the script.
bench-linalg: venv native-linalg ## PCA fit per BLAS/LAPACK -> bench/results/linalg.json
	$(BIN)/python bench/linalg.py $(LINALG_ARGS)

# The stamp names the versions, so a cached venv from before a bump is brought up to date.
OPENVINO_STAMP := $(OPENVINO_VENV)/.installed-$(OPENVINO_VERSION)-nncf-$(NNCF_VERSION)

bench-openvino: $(OPENVINO_STAMP) ## the benchmark-only OpenVINO venv (in the cache)

$(OPENVINO_STAMP):
	$(PYTHON) -m venv $(OPENVINO_VENV)
	$(OPENVINO_VENV)/bin/pip install --quiet openvino==$(OPENVINO_VERSION) \
	  nncf==$(NNCF_VERSION) numpy pillow
	touch $@
