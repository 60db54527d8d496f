"""The test servers' ports: held for the server that asked, from the moment they are chosen."""

from __future__ import annotations

import errno
import socket

import pytest

from support.net import free_port


def test_a_chosen_port_is_held_for_its_server_and_refused_to_any_other_socket():
    port = free_port()
    # A socket that does not ask to share the address is refused it: the port is still held
    # (in TIME_WAIT), so no other socket can take it before the server starts.
    with socket.socket() as other, pytest.raises(OSError) as refused:
        other.bind(("127.0.0.1", port))
    assert refused.value.errno == errno.EADDRINUSE
    # A server binds it as servers do, with SO_REUSEADDR, and clients reach it.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
