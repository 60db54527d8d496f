# Benchmarks (issue 6): fruitlens against bare Keras, naive Spark and the compute roofline, plus
# local[1] vs local[2], peak memory at 1x/4x/8x and an --incremental re-run, in one invocation.
# Writes bench/results/<timestamp>.json and bench/results/latest.json; see bench/README.md.
# About 20 minutes on a quiet 2-core machine with the defaults (--base 1500 images);
# BENCH_ARGS="--base 300 --scales 1,2" gives a quick smoke run.
BENCH_ARGS ?=

.PHONY: bench

bench: venv ## benchmark suite -> bench/results/latest.json (~20 min on 2 cores; BENCH_ARGS=)
	$(BIN)/python bench/run_bench.py $(BENCH_ARGS)
