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

    What main() sets for the whole process is restored afterwards, so that nothing of one call
    reaches the next test in this process (xdist's loadfile puts any file after any other):
    - the environment, key by key (main() exports the verbosity for its Python workers,
      FRUITLENS_VERBOSE, which is also the setting's own variable; clearing it whole, even for
      a moment, would race with the session's py4j and TensorFlow threads reading it);
    - the process umask (main() applies --umask);
    - the root logger's handlers and every logger's level (console.configure_logging sets the
      root's, fruitlens's and py4j's: a -v -v call left py4j at INFO), and Python warnings
      back to warnings.showwarning (configure_logging routes them through logging).
    """
    from fruitlens import cli

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = _logger_levels()
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
        for name in os.environ.keys() - environment.keys():
            del os.environ[name]
        for name, value in environment.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        os.umask(umask)
        for handler in root.handlers:
            handler.close()
        root.handlers = handlers
        for name in _logger_levels():
            logging.getLogger(name).setLevel(levels.get(name, logging.NOTSET))
        logging.captureWarnings(False)
    return CliResult(code, out.getvalue(), err.getvalue())


def _logger_levels() -> dict[str, int]:
    """The level of the root logger ("") and of every named logger made so far."""
    named = logging.Logger.manager.loggerDict.items()
    found = {name: logger.level for name, logger in named if isinstance(logger, logging.Logger)}
    return {"": logging.getLogger().level, **found}
