"""A live progress line for featurization: images done / total, images/s, ETA.

Fed by Spark, not by a clock: the images done are what an accumulator, added to by the
featurizing UDF for every batch it finishes, holds once Spark has merged the tasks' updates
(task by task, as they complete); the task counts beside them are the status tracker's. On a
terminal the line is redrawn in place; elsewhere (CI, `kubectl logs`) one line is printed every
`interval` seconds, so a log holds a few dozen lines, not thousands.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from pyspark import SparkContext

# How often a terminal line is redrawn; the numbers only move when tasks complete.
REDRAW_S = 0.5


@dataclass(frozen=True)
class Snapshot:
    done: int
    total: int
    elapsed_s: float
    tasks_done: int = 0
    tasks: int = 0

    @property
    def rate(self) -> float | None:
        return self.done / self.elapsed_s if self.done and self.elapsed_s > 0 else None

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate else None


def duration(seconds: float) -> str:
    """3 s, 4 min 05 s, 1 h 02 min."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def render(label: str, snap: Snapshot, finished: bool = False) -> str:
    share = f" ({snap.done / snap.total:.0%})" if snap.total else ""
    parts = [f"{label}: {snap.done:,}/{snap.total:,} images{share}"]
    rate = snap.rate
    parts.append(f"{rate:.1f} images/s" if rate else "starting")
    if finished:
        parts.append(f"done in {duration(snap.elapsed_s)}")
    elif snap.eta_s is not None:
        parts.append(f"ETA {duration(snap.eta_s)}")
    if snap.tasks and not finished:
        parts.append(f"{snap.tasks_done}/{snap.tasks} tasks")
    return ", ".join(parts)


def stage_tasks(context: SparkContext) -> tuple[int, int]:
    """Completed and total tasks of the stages running now (the status tracker's view)."""
    tracker = context.statusTracker()
    done = total = 0
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        if info is not None:
            done += info.numCompletedTasks
            total += info.numTasks
    return done, total


class Progress:
    """`with Progress(...)`: a thread draws the line while the block runs Spark jobs."""

    def __init__(
        self,
        label: str,
        total: int,
        done: Callable[[], int],
        tasks: Callable[[], tuple[int, int]] | None = None,
        interval_s: float = 10.0,
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self._done = done
        self._tasks = tasks
        self.stream = stream or sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = REDRAW_S if self.live else interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fruitlens-progress", daemon=True)
        self._start = 0.0

    def snapshot(self) -> Snapshot:
        tasks_done, tasks = self._tasks() if self._tasks else (0, 0)
        # A task retried after a failure adds its batches again: never show more than listed.
        done = min(int(self._done()), self.total)
        return Snapshot(done, self.total, time.monotonic() - self._start, tasks_done, tasks)

    def _write(self, line: str, final: bool = False) -> None:
        if self.live:
            # \r and "erase to end of line": the line is redrawn where it stands.
            self.stream.write(f"\r{line}\x1b[K" + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._write(render(self.label, self.snapshot()))
            except Exception:  # the JVM going away mid-poll must not kill the run's thread
                return

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def _stop_drawing(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def finish(self, done: int) -> None:
        """The last line, with the count the job established (all tasks merged)."""
        self._stop_drawing()
        snap = Snapshot(done, max(self.total, done), time.monotonic() - self._start)
        self._write(render(self.label, snap, finished=True), final=True)

    def __exit__(self, *exc_info: object) -> None:
        self._stop_drawing()
        if self.live and exc_info[0] is not None:
            self.stream.write("\n")  # the error line starts on a line of its own
            self.stream.flush()
