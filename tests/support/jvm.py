"""The test tiers' Spark driver JVMs start with the job's options for a small run: C1 only and
the serial collector (`fruitlens.session.SMALL_RUN_JVM`).

A test's JVM runs many small Spark jobs once each and then exits: the C2 compiler's work never
pays back. In the core lane's session C2 spent 78 s of CPU on test_classify alone, and C1 alone
16 s, with the same wall time; one 24-image `fruitlens run --master local[2]` took 34-38 s and
59-68 CPU-s by default, 25-27 s and 37-41 CPU-s with C1 only (2-core AMD EPYC). G1's marking
threads took 12-13 CPU-s of the core lane's two driver JVMs on a 2-core Zen 5; with the serial
collector the lane ran in 94-95 s against 99-109 s, alternated. The CPU saved is the other
lanes' (README, Testing). The code cache keeps its tiered size: a whole tier's generated code
fills the 48 MiB that C1 alone would leave ("Out of space in CodeCache for method handle
intrinsic").
"""

from __future__ import annotations

# A command gives C1 only to a run below session.SMALL_RUN_BELOW_FILES or whose BLAS is OpenBLAS
# (the serial collector to every run); a test's session gets both whatever its input and
# libraries, including the shared session, which is started without an input.
from fruitlens.session import SMALL_RUN_JVM

# Added to the job's own options (spark.driver.defaultJavaOptions), never replacing them.
DRIVER_OPTIONS = f"spark.driver.extraJavaOptions={SMALL_RUN_JVM}"
# For a command given --spark-conf flags of its own: they replace FRUITLENS_SPARK_CONF, through
# which the e2e tier sets DRIVER_OPTIONS (tests/e2e/conftest.py), so such a command repeats it.
DRIVER_FLAGS = ("--spark-conf", DRIVER_OPTIONS)
