"""Ctrl-C (SIGINT) ends a command with one line and exit 130 through its failure path, never in
pyspark's own handler (cli.StopSparkOnInterrupt, session.keeping_interrupt_handler).

Here the signal is sent to this process by a stand-in command, with a stand-in Spark context;
a real run is interrupted mid-featurize in tests/e2e/test_reliability_local.py.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator

import pytest
from pyspark import SparkContext

from fruitlens import cli, config, session
from support.cli import CliResult, invoke


class RunningContext:
    """Stands for the SparkContext a command started: records the threads that stop it."""

    def __init__(self) -> None:
        self.stopped_in: list[str] = []

    def stop(self) -> None:
        self.stopped_in.append(threading.current_thread().name)


@pytest.fixture(autouse=True)
def sigint_handler_restored() -> Iterator[None]:
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


def interrupted_command(
    monkeypatch: pytest.MonkeyPatch, context: RunningContext | None, then: Callable[[], None]
) -> CliResult:
    """`fruitlens jars` replaced by a command that sends this process SIGINT, then does `then`."""

    def command(cfg: config.Config) -> int:
        os.kill(os.getpid(), signal.SIGINT)
        then()
        return 0

    monkeypatch.setattr(SparkContext, "_active_spark_context", context)
    monkeypatch.setitem(cli.HANDLERS, config.JARS, command)
    result = invoke("jars")
    for thread in threading.enumerate():
        if thread.name == "fruitlens-interrupt":
            thread.join(timeout=10)
    return result


def test_before_spark_starts_ctrl_c_ends_the_command_at_once(monkeypatch: pytest.MonkeyPatch):
    def never_reached() -> None:
        raise AssertionError("the command went on after Ctrl-C")

    result = interrupted_command(monkeypatch, None, never_reached)
    assert (result.code, result.stderr, result.stdout) == (130, "fruitlens jars: interrupted\n", "")


def test_with_spark_running_ctrl_c_stops_it_from_another_thread_and_the_failure_reads_interrupted(
    monkeypatch: pytest.MonkeyPatch,
):
    context = RunningContext()

    def job_cut_short() -> None:  # what the command's call into a stopped Spark raises
        raise RuntimeError("Job 3 cancelled because SparkContext was shut down")

    result = interrupted_command(monkeypatch, context, job_cut_short)
    assert context.stopped_in == ["fruitlens-interrupt"]
    assert (result.code, result.stderr) == (130, "fruitlens jars: interrupted\n")
    assert "failed" not in result.stderr and "Traceback" not in result.stderr


def test_a_second_ctrl_c_ends_the_command_at_once(monkeypatch: pytest.MonkeyPatch):
    context = RunningContext()

    def stuck_then_interrupted_again() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("the second Ctrl-C did not end the command")

    result = interrupted_command(monkeypatch, context, stuck_then_interrupted_again)
    assert context.stopped_in == ["fruitlens-interrupt"]
    assert (result.code, result.stderr) == (130, "fruitlens jars: interrupted\n")


def test_the_command_line_puts_the_previous_handler_back(monkeypatch: pytest.MonkeyPatch):
    calls: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    interrupted_command(monkeypatch, RunningContext(), lambda: None)
    os.kill(os.getpid(), signal.SIGINT)
    assert calls == [signal.SIGINT]


def test_a_new_spark_context_s_handler_is_undone_and_ctrl_c_during_its_start_waits_for_ours():
    """pyspark's SparkContext installs a handler that cancels jobs through the main thread's
    busy py4j connection; a Ctrl-C while the session starts reaches the command's handler."""
    ours: list[int] = []
    pyspark_s: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: ours.append(signum))

    def create() -> str:
        signal.signal(signal.SIGINT, lambda signum, frame: pyspark_s.append(signum))
        os.kill(os.getpid(), signal.SIGINT)
        return "session"

    assert session.keeping_interrupt_handler(create) == "session"  # type: ignore[arg-type]
    assert (ours, pyspark_s) == ([signal.SIGINT], [])
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # unblocked
