# Native BLAS and LAPACK for Spark ML: Debian's reference libblas3 and liblapack3. Spark's
# netlib layer (dev.ludovic.netlib) reaches them through the JNI shim its jars carry, and falls
# back to a Java translation when they are missing: PCA's SVD of the 512 x 512 covariance then
# runs as Java code, seconds per fit where the native one takes a fraction (bench/README.md,
# "Profile and tuning"). The local job and both Spark test lanes use it.
LINALG_PACKAGES ?= libblas3 liblapack3

.PHONY: native-linalg

native-linalg: ## install Debian's BLAS and LAPACK (Spark ML's native path), once
	@# ldconfig lives in /sbin, which a non-root user's PATH may lack.
	@PATH="$$PATH:/sbin:/usr/sbin" ldconfig -p | grep -q 'liblapack\.so\.3 ' || \
	  { $(APT_INSTALL) $(LINALG_PACKAGES); }
