# Native BLAS and LAPACK for Spark ML: Debian's OpenBLAS, serial build. Spark's netlib layer
# (dev.ludovic.netlib) loads libblas.so.3 and liblapack.so.3 through the JNI shim its jars carry,
# and falls back to a Java translation when they are missing: PCA's SVD of the 512 x 512
# covariance then runs as Java code. OpenBLAS takes those two names over through Debian's
# alternatives (priority 90 against the reference libraries' 10) and fits the same PCA in about
# 0.6 times the reference LAPACK's time (`make bench-linalg`; bench/README.md, "Profile and
# tuning"). Serial, as Spark's ML linear algebra guide advises: each task thread makes its own
# BLAS call, so a threaded OpenBLAS would put more threads on the cores than there are. The
# local job and both Spark test lanes use it.
LINALG_PACKAGES ?= libopenblas0-serial

.PHONY: native-linalg

native-linalg: ## install Debian's serial OpenBLAS (Spark ML's native BLAS and LAPACK), once
	@# Installed means dpkg's "ii" for every package; a machine with only the reference libraries
	@# (what this target installed before) gets OpenBLAS too.
	@[ "$$(dpkg-query -W -f='$${db:Status-Abbrev}\n' $(LINALG_PACKAGES) 2>/dev/null | grep -c '^ii')" \
	  -eq $(words $(LINALG_PACKAGES)) ] || $(APT_INSTALL) $(LINALG_PACKAGES)
