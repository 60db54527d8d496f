"""Peak memory and CPU time of a whole process tree (driver, its JVM, the Python workers), from
/proc.

fruitlens's work is spread over several processes: the Python driver, the Spark JVM it
launches, the Python worker daemon and the workers it forks. A sampler thread sums the resident
set of every descendant every `interval` seconds and keeps the peak, with a per-kind breakdown;
it also keeps each process's CPU time, and the CPU each kind used between two lines of the
run's log (the featurize stage's start and end), which says where a stage's cores went.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree(root: int) -> list[int]:
    children = _children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


# The modules of the Python worker daemon: pyspark's, or fruitlens's own (session.DAEMON_MODULE,
# its standby included); the workers it forks keep its command line.
DAEMONS = {b"pyspark.daemon", b"fruitlens.python_daemon"}


def kind_of(argv: list[bytes]) -> str | None:
    """A process's kind from its command line (/proc's, split at NULs); None for an empty one:
    an ended process not yet reaped, or a kernel thread. By the program and the module it
    runs: Spark's launch scripts carry the daemon's module name among their arguments."""
    if not argv or not argv[0]:
        return None
    program = argv[0].rsplit(b"/", 1)[-1]
    if program.startswith(b"java"):
        return "jvm"
    if program.startswith(b"python"):
        module = argv[argv.index(b"-m") + 1] if b"-m" in argv[:-1] else None
        return "python_workers" if module in DAEMONS else "driver"
    return "other"


def _rss_kind_cpu(pid: int) -> tuple[int, str | None, float] | None:
    """Resident bytes, kind and CPU seconds (user + system, its threads ended or not); None
    once the process is gone."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, IndexError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return pages * PAGE, kind_of(argv), (int(fields[11]) + int(fields[12])) / TICKS


def _file_backed(pid: int) -> int:
    """Resident pages mapped from files (jars, mmapped Spark blocks): reclaimable page cache."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    kib = 0
    for line in lines:
        if line.startswith(("RssFile:", "RssShmem:")):
            kib += int(line.split()[1])
    return kib * 1024


class TreeSampler:
    """Samples the RSS sum of `root` and its descendants in a background thread.

    With `log_file` and `window` (two strings), the CPU time of each kind of process between
    the first log line holding the one and the first holding the other: `window_cpu`.
    """

    def __init__(
        self,
        root: int,
        interval: float = 0.2,
        log_file: Path | None = None,
        window: tuple[str, str] | None = None,
    ) -> None:
        self.root = root
        self.interval = interval
        self.peak_bytes = 0
        self.peak_breakdown: dict[str, int] = {}
        self.peak_processes = 0
        self.peak_file_backed = 0  # of the peak sample
        self.kind_peaks: dict[str, int] = {}  # each kind's own peak, whenever it happened
        self.kind_peak_at: dict[str, float] = {}  # seconds after start: matches run.json stages
        self.started = time.monotonic()
        self.samples = 0
        # Every process's latest CPU time, kept after it ends: a sum over the tree that
        # does not drop when a worker exits.
        self.cpu_by_pid: dict[int, tuple[str, float]] = {}
        self.log_file = log_file
        self.window = window
        self._log_offset = 0
        self.marked: dict[str, tuple[float, dict[int, float]]] = {}  # line: (time, pid: CPU)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        breakdown: dict[str, int] = {}
        file_backed = 0
        pids = tree(self.root)
        for pid in pids:
            process = _rss_kind_cpu(pid)
            if process is None:
                continue
            rss, kind, cpu = process
            # An ended process waiting to be reaped has no command line left, but its CPU
            # time stays: it keeps the kind it had. A launch script that execs java becomes
            # the JVM.
            kind = kind or self.cpu_by_pid.get(pid, ("other", 0.0))[0]
            self.cpu_by_pid[pid] = (kind, cpu)
            breakdown[kind] = breakdown.get(kind, 0) + rss
            file_backed += _file_backed(pid)
        total = sum(breakdown.values())
        for kind, value in breakdown.items():
            if value > self.kind_peaks.get(kind, 0):
                self.kind_peaks[kind] = value
                self.kind_peak_at[kind] = round(time.monotonic() - self.started, 1)
        self.samples += 1
        if total > self.peak_bytes:
            self.peak_bytes = total
            self.peak_breakdown = breakdown
            self.peak_processes = len(pids)
            self.peak_file_backed = file_backed
        self._mark_window()

    def cpu_by_kind(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for kind, cpu in self.cpu_by_pid.values():
            totals[kind] = totals.get(kind, 0.0) + cpu
        return totals

    def _mark_window(self) -> None:
        """Notes the time and CPU of the sample that first sees each of `window`'s lines."""
        if self.log_file is None or self.window is None or len(self.marked) == 2:
            return
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read()
        except OSError:
            return
        whole = text.rfind(b"\n") + 1  # a line still being written is read next time
        self._log_offset += whole
        for line in text[:whole].decode(errors="replace").splitlines():
            for mark in self.window:
                if mark in line and mark not in self.marked:
                    cpu = {pid: cpu for pid, (_, cpu) in self.cpu_by_pid.items()}
                    self.marked[mark] = (time.monotonic() - self.started, cpu)

    def window_cpu(self) -> dict[str, Any] | None:
        """Seconds between the window's two lines and CPU seconds per kind in them (to the
        sampling interval), or None if either line never came."""
        if self.window is None or not all(mark in self.marked for mark in self.window):
            return None
        (start, before), (end, after) = (self.marked[mark] for mark in self.window)
        # Each process's share goes to the kind it has last (a launch script became the JVM).
        used: dict[str, float] = {}
        for pid, cpu in after.items():
            kind = self.cpu_by_pid[pid][0]
            used[kind] = used.get(kind, 0.0) + cpu - before.get(pid, 0.0)
        return {
            "window_s": round(end - start, 2),
            "cpu_s": {kind: round(cpu, 2) for kind, cpu in sorted(used.items())},
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def summary(self) -> dict[str, object]:
        mib = 1 << 20
        return {
            "peak_rss_mb": round(self.peak_bytes / mib, 1),
            "peak_breakdown_mb": {
                kind: round(value / mib, 1) for kind, value in sorted(self.peak_breakdown.items())
            },
            "peak_per_kind_mb": {
                kind: round(value / mib, 1) for kind, value in sorted(self.kind_peaks.items())
            },
            "peak_per_kind_at_s": dict(sorted(self.kind_peak_at.items())),
            "peak_file_backed_mb": round(self.peak_file_backed / mib, 1),
            "processes_at_peak": self.peak_processes,
            "cpu_s": {kind: round(cpu, 2) for kind, cpu in sorted(self.cpu_by_kind().items())},
            "samples": self.samples,
            "interval_s": self.interval,
        }
