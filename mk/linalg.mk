# Native BLAS and LAPACK for Spark ML: Debian's OpenBLAS, threaded build. Spark's netlib layer
# (dev.ludovic.netlib) loads libblas.so.3 and liblapack.so.3 through the JNI shim its jars carry,
# and falls back to a Java translation when they are missing: PCA's SVD of the 512 x 512
# covariance then runs as Java code. OpenBLAS takes those two names over through Debian's
# alternatives (priority 100 against the reference libraries' 10) and fits the same PCA in about
# 0.6 times the reference LAPACK's time (`make bench-linalg`; bench/README.md, "Profile and
# tuning"). The local job and both Spark test lanes use it.
#
# Threaded, not serial: Spark's task threads call BLAS at the same time, and OpenBLAS built
# without threads is not safe for that unless built with USE_LOCKING (OpenBLAS's
# Makefile.rule). With Debian's serial build a `--master local[2]` run scored one of 64 Test
# images wrongly, twice; with the threaded one its predictions equalled the reference
# libraries' to 4e-15 (2026-12-04). session.export_local_defaults gives it one thread per call
# (OPENBLAS_NUM_THREADS=1), as Spark's ML linear algebra guide advises. Where the serial build
# is the liblapack.so.3 Spark would load (an administrator's choice), the target stops with what
# to do.
LINALG_PACKAGES ?= libopenblas0-pthread

.PHONY: native-linalg

native-linalg: ## install Debian's threaded OpenBLAS (Spark ML's native BLAS and LAPACK), once
	@# Installed means dpkg's "ii" for every package: a machine with only the reference
	@# libraries (what this target installed before) gets OpenBLAS too.
	@[ "$$(dpkg-query -W -f='$${db:Status-Abbrev}\n' $(LINALG_PACKAGES) 2>/dev/null | grep -c '^ii')" \
	  -eq $(words $(LINALG_PACKAGES)) ] || $(APT_INSTALL) $(LINALG_PACKAGES)
	@# ldconfig lives in /sbin, which a non-root user's PATH may lack.
	@lapack=$$(PATH="$$PATH:/sbin:/usr/sbin" ldconfig -p | sed -n 's/.*liblapack\.so\.3 .*=> //p' | head -n1); \
	case "$$(readlink -f "$$lapack")" in *openblas-serial*) \
	  echo "native-linalg: $$lapack is the serial OpenBLAS, unsafe for Spark's task threads: remove libopenblas0-serial or point the liblapack.so.3 and libblas.so.3 alternatives at libopenblas0-pthread's (update-alternatives --config)" >&2; \
	  exit 1;; \
	esac
