"""`fruitlens` command line: one subcommand per job, every flag documented with an example."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, NoReturn

from fruitlens import __version__, config, console, errors, redact
from fruitlens.commands import submit

EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a command Ctrl-C stopped

COMMANDS: dict[str, tuple[str, str]] = {
    config.RUN: (
        "featurize images with VGG16, reduce with PCA, train and score a classifier",
        "fruitlens run --input s3a://fruits/raw --output s3a://fruits/runs/r1 --weights seeded:0",
    ),
    config.TRAIN: (
        "train a classifier (standardise, PCA, classifier; CV on Training) on stored features",
        "fruitlens train --features s3a://fruits/runs/r1 --output s3a://fruits/models/v1",
    ),
    config.EVALUATE: (
        "score a trained model on stored labelled features: accuracy, macro-F1, confusion",
        "fruitlens evaluate --model s3a://fruits/models/v1 --features s3a://fruits/runs/r1 "
        "--output s3a://fruits/eval/v1",
    ),
    config.PREDICT: (
        "label new images (no class folders needed) with a trained model",
        "fruitlens predict --model s3a://fruits/models/v1 --input s3a://fruits/new "
        "--output s3a://fruits/predictions/today",
    ),
    config.SANITIZE: (
        "copy images with every metadata block (EXIF, GPS, XMP, ICC, comments) removed, "
        "pixels unchanged, and report what was removed",
        "fruitlens sanitize --input s3a://fruits/incoming --output s3a://fruits/raw",
    ),
    config.ERASE: (
        "erase every derived row of given images from a run's outputs (right to erasure)",
        "fruitlens erase --output s3a://fruits/runs/r1 --image-id 9f86d08... --delete-source",
    ),
    config.RETENTION: (
        "set the S3 lifecycle rule (expiry after N days) on the project's prefixes",
        "fruitlens retention --bucket fruits --days 30 --prefix runs/",
    ),
    config.REPORT: (
        "write report.html of a run from its stored outputs (or compare two runs side by "
        "side) and print where to open it: a local path or a presigned HTTPS URL",
        "fruitlens report s3a://fruits/runs/r1 s3a://fruits/runs/r2 --output s3a://fruits/cmp",
    ),
    config.JARS: (
        "download hadoop-aws, its AWS SDK and spark-hadoop-cloud matching pyspark (checksummed)",
        "fruitlens jars --jars-dir /opt/spark/jars",
    ),
}


SUBMIT = "submit"
SUBMIT_SUMMARY = (
    "create the SparkApplication (from the chart or a manifest), follow it to COMPLETED or "
    "FAILED, stream the driver log"
)


class OneLineParser(argparse.ArgumentParser):
    """Wrong usage is one line saying what to do (and exit 2), not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="fruitlens",
        description="Fruit image classification at scale: S3 -> Spark -> VGG16 -> PCA -> "
        "classifier -> S3. Every flag can also be set as FRUITLENS_<FLAG> or in --config.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example:\n  "
        + COMMANDS[config.RUN][1]
        + "\n\nRun `fruitlens COMMAND --help` for the flags of each command.",
    )
    parser.add_argument("--version", action="version", version=f"fruitlens {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser
    )
    for name, (summary, example) in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=f"Example:\n  {textwrap.fill(example, 100, subsequent_indent='    ')}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        config.add_arguments(sub, name)
    submit_parser = commands.add_parser(
        SUBMIT,
        help=SUBMIT_SUMMARY,
        description=SUBMIT_SUMMARY,
        epilog="Example:\n  fruitlens submit -f helm/fruitlens/values-eks.yaml -n fruitlens",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    submit.add_submit_arguments(submit_parser)
    return parser


def _summary(document: dict[str, Any]) -> str:
    from fruitlens.outputs import report

    return report.summary(document)


def _report_summary(document: dict[str, Any]) -> str:
    from fruitlens.commands import report

    return report.summary(document)


def _json(document: dict[str, Any]) -> str:
    return json.dumps(
        redact.scrub(document), indent=2, sort_keys=True, ensure_ascii=False, default=str
    )


def _command(
    module: str, name: str, render: Callable[[dict[str, Any]], str]
) -> Callable[[config.Config], int]:
    """Run `fruitlens.commands.<module>.<name>(cfg)` (imported late: Spark and TF load slowly)
    and print its document: jobs end with the one-screen summary, GDPR commands with their JSON
    report. Whatever the command cached in Spark is dropped when it ends, even on failure."""

    def handler(cfg: config.Config) -> int:
        try:
            command = getattr(importlib.import_module(f"fruitlens.commands.{module}"), name)
            print(render(command(cfg)))
        finally:
            from fruitlens import session

            session.release_cached()
        return 0

    return handler


def _jars(cfg: config.Config) -> int:
    from fruitlens import jars

    for jar in jars.ensure_jars(cfg.jars_dir):
        print(jar)
    return 0


HANDLERS: dict[str, Callable[[config.Config], int]] = {
    config.RUN: _command("run", "run_command", _summary),
    config.TRAIN: _command("train", "train_command", _summary),
    config.EVALUATE: _command("evaluate", "evaluate_command", _summary),
    config.PREDICT: _command("predict", "predict_command", _summary),
    config.SANITIZE: _command("sanitize", "sanitize_command", _json),
    config.ERASE: _command("erase", "erase_command", _json),
    config.RETENTION: _command("retention", "retention_command", _json),
    config.REPORT: _command("report", "report_command", _report_summary),
    config.JARS: _jars,
}


class StopSparkOnInterrupt:
    """The SIGINT handler of a command: the first Ctrl-C stops the running Spark context, from
    another thread because the main thread's py4j connection is usually waiting for a job. That
    call then fails, and the command ends as interrupted (`received`) through its failure path:
    as after any failure, nothing is committed. Before Spark has started, and at a second
    Ctrl-C, KeyboardInterrupt."""

    def __init__(self) -> None:
        self.received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self.received = True
        pyspark = sys.modules.get("pyspark")
        # pyspark's own record of the context: asking the JVM would need the main thread's
        # connection. It is recorded before its JVM side exists (`_jsc`): until then, as if
        # Spark had not started.
        context = pyspark.SparkContext._active_spark_context if pyspark else None
        if context is None or getattr(context, "_jsc", None) is None:
            raise KeyboardInterrupt
        threading.Thread(target=context.stop, name="fruitlens-interrupt", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand's parser, so that the line names the command
        subcommands = next(a for a in parser._actions if a.dest == "command").choices
        subcommands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    interrupt = StopSparkOnInterrupt()
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        return run_parsed(args, interrupt)
    except KeyboardInterrupt:
        return interrupted(args.command)
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupted(command: str) -> int:
    print(f"fruitlens {command}: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def run_parsed(args: argparse.Namespace, interrupt: StopSparkOnInterrupt) -> int:
    if args.command == SUBMIT:
        # Its flags describe a Kubernetes submission, not the job: they are not Config settings.
        console.configure_logging(console.QUIET)
        redact.install()
        return submit.run_submit(args)
    flags: dict[str, Any] = vars(args)
    try:
        cfg = config.build_config(args.command, flags)
        # Local outputs (Python's writes; Hadoop's follow spark.hadoop.fs.permissions.umask-mode)
        # are readable by the owner only unless --umask says otherwise.
        os.umask(cfg.umask_bits)
        console.configure_logging(cfg.verbose)
        redact.install()  # no credential, token or presigned URL ever reaches a log line
        return HANDLERS[args.command](cfg)
    except errors.UsageError as exc:
        print(redact.redact(f"fruitlens {args.command}: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # Spark/S3 failures: one readable line, the trace in the log
        logging.getLogger("fruitlens").debug("failure", exc_info=True)
        if interrupt.received:  # the failure of the call Spark's stop cut short
            return interrupted(args.command)
        message = f"fruitlens {args.command}: failed: {describe_failure(exc)}"
        print(redact.redact(message), file=sys.stderr)
        return EXIT_FAILED


def describe_failure(exc: BaseException) -> str:
    """The first meaningful line of a (possibly Java) exception, naming S3 when S3 is the cause."""
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    java = [
        line for line in lines if line.startswith(("java.", "org.apache", "software.amazon", ": "))
    ]
    headline = (java or lines or [type(exc).__name__])[0].lstrip(": ")
    if any(marker in text for marker in ("s3a://", "S3A", "software.amazon.awssdk", "AmazonS3")):
        return f"S3 error: {headline[:400]}"
    return headline[:400]
