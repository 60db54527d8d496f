"""The test tiers' Spark driver JVMs compile with C1 only.

A test's JVM runs many small Spark jobs once each and then exits: the C2 compiler's work never
pays back. In the core lane's session C2 spent 78 s of CPU on test_classify alone, and C1 alone
16 s, with the same wall time; one 24-image `fruitlens run --master local[2]` took 34-38 s and
59-68 CPU-s by default, 25-27 s and 37-41 CPU-s with C1 only (2-core AMD EPYC). The CPU saved is
the other lanes' (README, Testing). The options are the job's own for a small local run
(`fruitlens.session.C1_ONLY`), code cache included: a whole tier's generated code fills the
48 MiB that C1 alone would leave ("Out of space in CodeCache for method handle intrinsic").
"""

from __future__ import annotations

# A command gives them only to a run below session.C1_ONLY_BELOW_FILES; a test's session gets
# them whatever its input, including the shared session, which is started without one.
from fruitlens.session import C1_ONLY

# Added to the job's own options (spark.driver.defaultJavaOptions), never replacing them.
DRIVER_OPTIONS = f"spark.driver.extraJavaOptions={C1_ONLY}"
# For a command given --spark-conf flags of its own: they replace FRUITLENS_SPARK_CONF, through
# which the e2e tier sets DRIVER_OPTIONS (tests/e2e/conftest.py), so such a command repeats it.
DRIVER_FLAGS = ("--spark-conf", DRIVER_OPTIONS)
