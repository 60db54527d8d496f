"""The `fruitlens` command line two ways: in this process (fast: the test session's Spark and
TensorFlow are reused) and as a child process (for what only a process shows: exit status of
the console script, signals, a fresh JVM)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from dataclasses import dataclass

from support.paths import REPO


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 900) -> CliResult:
    """The console script in a subprocess, exactly as a user runs it."""
    command = [sys.executable, "-m", "fruitlens", *args]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def invoke(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """`fruitlens.cli.main(args)` in this process: the same parsing, settings, error handling and
    log lines as the console script, with stdout, stderr and the log captured.

    The environment is restored afterwards, whole: main() exports the verbosity for its Python
    workers (FRUITLENS_VERBOSE, which is also the setting's own variable), and a -v -v command
    must not make the next one in this process verbose. So are the process umask (main()
    applies --umask) and the root logger's handlers (main() calls logging.basicConfig, which
    only configures a root logger that has none).
    """
    from fruitlens import cli

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = []
    umask = os.umask(0o022)
    os.umask(umask)
    environment = dict(os.environ)
    try:
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exit_:  # argparse: --help, or a flag it rejects
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(environment)
        os.umask(umask)
        for handler in root.handlers:
            handler.close()
        root.handlers, level = saved
        root.setLevel(level)
    return CliResult(code, out.getvalue(), err.getvalue())
