"""What a person sees in the terminal: fruitlens's own lines by default, the parts' chatter on -v.

One verbosity (Config.verbose, from -v / -v -v) decides every layer at once: Python logging
(fruitlens, py4j, boto, warnings), the Spark JVM's log4j2 level and console progress bar, and
TensorFlow's C++ and absl logging in the driver and in the Python workers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

QUIET, WARNINGS, EVERYTHING = 0, 1, 2

# log4j2 root level of the Spark JVM per verbosity; "fatal" keeps a failing job to the one line
# the CLI prints (-v shows Spark's warnings and errors, with their traces).
LOG4J_LEVELS = {QUIET: "fatal", WARNINGS: "warn", EVERYTHING: "info"}
# TF_CPP_MIN_LOG_LEVEL: 2 hides TensorFlow's INFO and WARNING lines (oneDNN notices, CPU
# feature banners), 1 only its INFO lines, 0 nothing.
TF_LEVELS = {QUIET: "2", WARNINGS: "1", EVERYTHING: "0"}
FULL_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def level(verbosity: int | None) -> int:
    return min(max(verbosity or 0, QUIET), EVERYTHING)


# The driver's verbosity in its Python workers' environment (spark_settings); also the
# variable of the --verbose setting itself (config: FRUITLENS_<NAME>).
WORKERS_VERBOSITY = "FRUITLENS_VERBOSE"


def workers_level() -> int:
    """In a Python worker or daemon: the verbosity the driver chose."""
    return level(int(os.environ.get(WORKERS_VERBOSITY, "0") or 0))


class PersonFormatter(logging.Formatter):
    """`11:02:03 stage featurize: done in 6.3 s`; warnings and errors say so in words."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            time, _, message = text.partition(" ")
            return f"{time} {record.levelname.lower()}: {message}"
        return text


def configure_logging(verbosity: int | None) -> None:
    """Python-side logging for the process (call once, before Spark or TensorFlow load)."""
    chosen = level(verbosity)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PersonFormatter() if chosen == QUIET else logging.Formatter(FULL_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries: errors only by default (botocore's "Found credentials" is INFO, py4j logs a
    # line per gateway call); fruitlens's own stage lines stay at INFO.
    # -v -v: every library's debug lines too (botocore's requests, redacted by redact.py).
    root.setLevel({QUIET: logging.ERROR, WARNINGS: logging.WARNING}.get(chosen, logging.DEBUG))
    logging.getLogger("fruitlens").setLevel(logging.INFO if chosen == QUIET else logging.DEBUG)
    logging.getLogger("py4j").setLevel(logging.INFO if chosen == EVERYTHING else logging.CRITICAL)
    logging.captureWarnings(True)  # Python warnings become records the levels above filter
    for name, value in worker_environment(chosen).items():
        os.environ.setdefault(name, value)  # the driver's own TensorFlow, and local workers


def worker_environment(verbosity: int | None) -> dict[str, str]:
    """Environment of the Python workers (spark.executorEnv.*) for this verbosity."""
    chosen = level(verbosity)
    environment = {"TF_CPP_MIN_LOG_LEVEL": TF_LEVELS[chosen], WORKERS_VERBOSITY: str(chosen)}
    if chosen == QUIET:
        environment["PYTHONWARNINGS"] = "ignore"  # Keras/NumPy warnings printed by workers
    return environment


# Keras imports these when they are installed, for parts fruitlens never calls: its
# scikit-learn wrapper (keras/src/wrappers/fixes.py) and its image-gallery plot
# (keras/src/visualization). Both imports are optional there (ImportError is caught), and they
# were 0.9 s of the 4.4 s a featurize worker spent importing Keras (python -X importtime,
# 2026-12-02). A process that needs them later imports them as usual.
KERAS_EXTRAS = ("sklearn", "matplotlib")


@contextmanager
def hidden_modules(names: tuple[str, ...]) -> Iterator[None]:
    """While the block runs, `import NAME` raises ImportError for each of `names` that this
    process has not imported yet (Python's sys.modules convention for a blocked import)."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras at the verbosity the driver chose (FRUITLENS_VERBOSE, passed to
    the workers too), before any model is built.

    TensorFlow 2.21 writes its import-time notices (oneDNN, CPU features) through absl before
    absl's logging is initialised, straight to file descriptor 2 and whatever
    TF_CPP_MIN_LOG_LEVEL says: quiet, the import runs with that descriptor on /dev/null (an
    import error still raises). Then absl's Python logger (Keras's 'WARNING:absl' lines) and
    TensorFlow's follow the verbosity.
    """
    chosen = workers_level()
    if "keras" not in sys.modules:
        with native_stderr_to_null(enabled=chosen == QUIET), hidden_modules(KERAS_EXTRAS):
            import keras  # noqa: F401  (Keras imports TensorFlow)
    if chosen == EVERYTHING:
        return
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR if chosen == QUIET else absl_logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR if chosen == QUIET else logging.WARNING)


@contextmanager
def native_stderr_to_null(enabled: bool = True) -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (what C++ code writes there)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def log4j2_file() -> str:
    return str(resources.files("fruitlens").joinpath("data/log4j2.properties"))


def java_options(verbosity: int | None) -> str:
    """JVM options selecting fruitlens's log4j2 file at this verbosity."""
    return (
        f"-Dlog4j2.configurationFile=file:{log4j2_file()} "
        f"-Dfruitlens.log.level={LOG4J_LEVELS[level(verbosity)]}"
    )


# The Python workers' environment variables, as Spark settings: by name after this prefix.
EXECUTOR_ENV = "spark.executorEnv."


def spark_settings(verbosity: int | None) -> dict[str, str]:
    """Spark settings of this verbosity: the progress bar, and the workers' environment."""
    chosen = level(verbosity)
    settings = {"spark.ui.showConsoleProgress": str(chosen == EVERYTHING).lower()}
    for name, value in worker_environment(chosen).items():
        settings[EXECUTOR_ENV + name] = value
    return settings
