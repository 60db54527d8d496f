"""Loopback ports for the servers tests start (moto, the fault proxy, the API server, etcd)."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    """A port nothing listens on now: the OS picks it, so parallel runs never collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, seconds: float = 30
) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`; otherwise stop `process`
    (the server that should have opened it) and fail, naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{what} did not open port {port} within {seconds:.0f} s")
