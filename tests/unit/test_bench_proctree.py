"""The benchmark's process-tree sampler: which process is which, and the CPU time of a window
between two log lines, counted from a real process tree (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import proctree  # bench/ holds scripts, not a package: found through sys.path


@pytest.mark.parametrize(
    ("cmdline", "kind"),
    [
        (b"/usr/lib/jvm/java-17/bin/java\0-cp\0/x\0org.apache.spark.deploy.SparkSubmit\0", "jvm"),
        (
            b"/repo/.venv/bin/python\0-m\0fruitlens.python_daemon\0--standby\x003\0",
            "python_workers",
        ),
        (
            b"/repo/.venv/bin/python\0-m\0fruitlens.python_daemon\0pyspark.worker\0",
            "python_workers",
        ),
        (b"python3\0-m\0pyspark.daemon\0", "python_workers"),
        (b"/repo/.venv/bin/python\0-m\0fruitlens\0run\0--input\0in\0", "driver"),
        # Spark's launch script names the daemon's module in its arguments; it then execs java.
        (
            b"bash\0/repo/.venv/lib/python3.11/site-packages/pyspark/bin/spark-class\0"
            b"org.apache.spark.deploy.SparkSubmit\0--conf\0"
            b"spark.python.daemon.module=fruitlens.python_daemon\0",
            "other",
        ),
        (b"", None),  # ended, not yet reaped
    ],
)
def test_each_process_of_a_run_gets_its_kind(cmdline: bytes, kind: str | None) -> None:
    assert proctree.kind_of(cmdline.split(b"\0")[:-1]) == kind


# A "run": logs the window's first line, has a child burn 0.4 s of CPU and exit, logs the last.
RUN = textwrap.dedent(
    """
    import subprocess, sys, time
    log = open(sys.argv[1], "a", buffering=1)
    print("noise before", file=log)
    time.sleep(0.3)
    print("stage begins", file=log)
    time.sleep(0.3)
    burn = "import time\\nwhile time.process_time() < 0.4: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    print("stage ends", file=log)
    time.sleep(0.3)
    """
)


def test_the_window_counts_the_cpu_of_a_child_that_ended_inside_it(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.touch()
    process = subprocess.Popen([sys.executable, "-c", RUN, str(log)])
    sampler = proctree.TreeSampler(
        process.pid, interval=0.02, log_file=log, window=("stage begins", "stage ends")
    ).start()
    assert process.wait(timeout=60) == 0
    sampler.stop()
    window = sampler.window_cpu()
    assert window is not None
    # The child's 0.4 s, kept after it exited; the parent's own start (imports) came before.
    assert 0.3 <= window["cpu_s"]["driver"] < 0.4 + 0.3
    assert window["window_s"] >= 0.3
    assert sampler.summary()["cpu_s"]["driver"] >= window["cpu_s"]["driver"]


def test_no_window_when_its_last_line_never_comes(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("stage begins\n")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    sampler = proctree.TreeSampler(
        process.pid, interval=0.02, log_file=log, window=("stage begins", "stage ends")
    ).start()
    process.wait(timeout=60)
    sampler.stop()
    assert "stage begins" in sampler.marked
    assert sampler.window_cpu() is None


def test_an_ended_process_not_yet_reaped_keeps_its_kind_and_cpu() -> None:
    burn = "import time\nwhile time.process_time() < 0.2: pass\ntime.sleep(0.3)"
    process = subprocess.Popen([sys.executable, "-c", burn])
    sampler = proctree.TreeSampler(process.pid)
    while sampler.cpu_by_kind().get("driver", 0.0) < 0.1:
        sampler.sample()
    stat = Path(f"/proc/{process.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":  # ended, not reaped: no cmdline
        time.sleep(0.01)
    sampler.sample()
    assert set(sampler.cpu_by_kind()) == {"driver"}
    assert sampler.cpu_by_kind()["driver"] >= 0.15  # /proc counts in ticks of 10 ms
    process.wait()
