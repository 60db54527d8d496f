"""Loopback ports for the servers tests start (moto, the fault proxy, the API server, etcd)."""

from __future__ import annotations

import socket
import subprocess
import time

from ephemeral_port_reserve import reserve


def free_port() -> int:
    """A loopback port nothing listens on, held for the server that asked for it.

    A port the OS merely picked and freed can be handed to another socket before the server
    binds it: any outgoing loopback connection (py4j, Spark's Python workers, etcd's clients)
    takes its local port from the same range, and the lanes run side by side. One did once,
    and kube-apiserver failed with "address already in use". `reserve` leaves the port in
    TIME_WAIT (~60 s), in which the kernel gives it to no implicit bind or connect, while a
    server setting SO_REUSEADDR (Go's listeners, Python's http.server) can still bind it."""
    return reserve("127.0.0.1")


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
