"""A Python worker that dies once: set as `spark.python.worker.module` to test task retries.

Spark's daemon imports this module and calls `main(infile, outfile)` for each task instead of
`pyspark.worker.main` -- only if its name starts with "pyspark" (pyspark/daemon.py ignores any
other), hence the name; put tests/support/faults on the workers' PYTHONPATH. The first call anywhere
(whichever worker creates the marker file named by FRUITLENS_FAULT_MARKER) exits the process
abruptly, as an OOM kill would; every other call, and every call once the marker exists, is an
ordinary pyspark worker.
"""

from __future__ import annotations

import os

from pyspark.worker import main as pyspark_main


def main(infile, outfile) -> None:  # pyspark.worker.main's own signature
    marker = os.environ.get("FRUITLENS_FAULT_MARKER")
    if marker:
        try:
            descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(descriptor, str(os.getpid()).encode())
            os.close(descriptor)
            os._exit(137)
    pyspark_main(infile, outfile)
