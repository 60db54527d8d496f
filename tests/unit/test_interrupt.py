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

    def __init__(self, jvm_side: object | None = "started") -> None:
        self._jsc = jvm_side  # pyspark's handle on the JVM's context, None while it starts
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
    went_on: list[str] = []  # an AssertionError here would read "interrupted" all the same
    result = interrupted_command(monkeypatch, None, lambda: went_on.append("after Ctrl-C"))
    assert went_on == []
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

    went_on: list[str] = []

    def stuck_then_interrupted_again() -> None:
        os.kill(os.getpid(), signal.SIGINT)
        went_on.append("after the second Ctrl-C")

    result = interrupted_command(monkeypatch, context, stuck_then_interrupted_again)
    assert went_on == []
    assert context.stopped_in == ["fruitlens-interrupt"]
    assert (result.code, result.stderr) == (130, "fruitlens jars: interrupted\n")


def test_the_command_line_puts_the_previous_handler_back(monkeypatch: pytest.MonkeyPatch):
    calls: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    interrupted_command(monkeypatch, RunningContext(), lambda: None)
    os.kill(os.getpid(), signal.SIGINT)
    assert calls == [signal.SIGINT]


def test_while_the_jvm_starts_ctrl_c_ends_the_command_at_once(monkeypatch: pytest.MonkeyPatch):
    starting = RunningContext(jvm_side=None)
    went_on: list[str] = []
    result = interrupted_command(monkeypatch, starting, lambda: went_on.append("after Ctrl-C"))
    assert went_on == [] and starting.stopped_in == []
    assert (result.code, result.stderr) == (130, "fruitlens jars: interrupted\n")


def test_the_handler_a_new_spark_context_installs_is_undone():
    """pyspark's SparkContext installs one that cancels jobs through the main thread's busy py4j
    connection."""
    ours: list[int] = []
    pyspark_s: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: ours.append(signum))

    def create() -> str:
        signal.signal(signal.SIGINT, lambda signum, frame: pyspark_s.append(signum))
        return "context"

    assert session.keeping_interrupt_handler(create) == "context"  # type: ignore[arg-type]
    os.kill(os.getpid(), signal.SIGINT)
    assert (ours, pyspark_s) == ([signal.SIGINT], [])


def test_ctrl_c_while_the_context_starts_is_held_until_it_has():
    """Interrupting pyspark's launch of the JVM would leave the JVM running for good."""
    ours: list[int] = []
    started: list[str] = []
    signal.signal(signal.SIGINT, lambda signum, frame: ours.append(signum))

    def create() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        started.append("context")
        return "context"

    with pytest.raises(KeyboardInterrupt):
        session.keeping_interrupt_handler(create)  # type: ignore[arg-type]
    assert started == ["context"] and ours == []
    os.kill(os.getpid(), signal.SIGINT)  # the command's handler is back
    assert ours == [signal.SIGINT]


def test_a_second_ctrl_c_while_the_context_starts_is_not_held():
    def create() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("a second Ctrl-C was held too")

    signal.signal(signal.SIGINT, lambda signum, frame: None)
    with pytest.raises(KeyboardInterrupt):
        session.keeping_interrupt_handler(create)  # type: ignore[arg-type]
