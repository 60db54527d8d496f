"""The exceptions fruitlens raises on purpose; the CLI catches their base class once.

`UsageError`: a condition the person running the command must fix (a missing flag, an output
that already holds files, an unknown model): one line `error: ...`, exit status 2, before Spark
starts where possible. `Failure`: the job itself went wrong (broken accounting, a write that
did not land): one line `failed: ...`, exit status 1, as any other unexpected exception.
Importing this module imports nothing else, so printing an error never loads Spark.
"""

from __future__ import annotations


class FruitlensError(Exception):
    """Base of every error fruitlens raises on purpose."""


class UsageError(FruitlensError):
    """A condition the user must fix; printed as one line, exit status 2."""


class Failure(FruitlensError):
    """The job went wrong although the command was right; exit status 1."""
