"""Loopback ports for the servers tests start (moto, the fault proxy, the API server, etcd)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now: the OS picks it, so parallel runs never collide."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
