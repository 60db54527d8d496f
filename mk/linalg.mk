# Native BLAS and LAPACK for Spark ML: Debian's reference libblas3 and liblapack3. Spark's
# netlib layer (dev.ludovic.netlib) reaches them through the JNI shim its jars carry, and falls
# back to a Java translation when they are missing: PCA's SVD of the 512 x 512 covariance then
# runs as Java code, seconds per fit where the native one takes a fraction (bench/README.md,
# "Profile and tuning"). The local job and both Spark test lanes use it.
# Not Debian's serial OpenBLAS, though it fits PCA in 0.6 times the time (`make bench-linalg`):
# OpenBLAS built without threads is not safe to call from two threads at once unless built with
# USE_LOCKING (OpenBLAS's Makefile.rule), and Spark's task threads do just that. A
# `--master local[2]` run with Debian's scored one of 64 Test images wrongly, twice, where
# local[1] and these libraries did not, and the saved model rescored it right (2026-12-04;
# bench/README.md). Where it is installed it wins Debian's alternatives (priority 90 against
# 10), so the target stops with what to do rather than let Spark use it.
LINALG_PACKAGES ?= libblas3 liblapack3

.PHONY: native-linalg

native-linalg: ## install Debian's BLAS and LAPACK (Spark ML's native path), once
	@# ldconfig lives in /sbin, which a non-root user's PATH may lack.
	@PATH="$$PATH:/sbin:/usr/sbin" ldconfig -p | grep -q 'liblapack\.so\.3 ' || \
	  { $(APT_INSTALL) $(LINALG_PACKAGES); }
	@lapack=$$(PATH="$$PATH:/sbin:/usr/sbin" ldconfig -p | sed -n 's/.*liblapack\.so\.3 .*=> //p' | head -n1); \
	case "$$(readlink -f "$$lapack")" in *openblas-serial*) \
	  echo "native-linalg: $$lapack is the serial OpenBLAS, unsafe for Spark's task threads: remove libopenblas0-serial or point the liblapack.so.3 and libblas.so.3 alternatives at the reference libraries (update-alternatives --config)" >&2; \
	  exit 1;; \
	esac
