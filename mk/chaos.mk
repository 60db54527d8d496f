# Reliability at scale (issue 7), NOT part of `make test`: 20 000+ images (the shared subset
# repeated with new content ids, built in a temporary folder outside the repository) through
# local[2], checking that the run completes and the bad-input accounting is exact; peak memory
# of the whole process tree is recorded. Report: bench/results/chaos.json.
# CHAOS_ARGS="--images 2000" gives a quick smoke run; "--keep --workdir /tmp/x" keeps the data.
# The fault tests (S3 throttling/outage, killed runs and workers, hostile names) are in
# tests/e2e/test_reliability_*.py and run with `make test`.
CHAOS_ARGS ?=

.PHONY: chaos

chaos: venv ## 20 000+ images through local[2]: completes, accounting exact (CHAOS_ARGS=)
	$(BIN)/fruitlens jars >/dev/null
	$(BIN)/python bench/chaos_scale.py $(CHAOS_ARGS)
