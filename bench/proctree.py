"""Peak memory of a whole process tree (driver, its JVM, the Python workers), from /proc.

fruitlens's memory is spread over several processes: the Python driver, the Spark JVM it
launches, pyspark's worker daemon and the workers it forks. A sampler thread sums the resident
set of every descendant every `interval` seconds and keeps the peak, with a per-kind breakdown.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


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


def _rss_and_kind(pid: int) -> tuple[int, str]:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (OSError, IndexError, ValueError):
        return 0, "gone"
    if b"java" in cmdline.split(b" ")[0]:
        kind = "jvm"
    elif b"pyspark.daemon" in cmdline or b"pyspark/daemon" in cmdline:
        kind = "python_workers"  # the daemon and the workers it forks share this cmdline
    elif b"python" in cmdline:
        kind = "driver"
    else:
        kind = "other"
    return pages * PAGE, kind


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
    """Samples the RSS sum of `root` and its descendants in a background thread."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
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
            rss, kind = _rss_and_kind(pid)
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
            "samples": self.samples,
            "interval_s": self.interval,
        }
