"""The suite's own guard (tests/conftest.py): nothing in a test reaches beyond this machine."""

from __future__ import annotations

import socket

import pytest


def test_connections_beyond_loopback_are_refused():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, \
            pytest.raises(ConnectionRefusedError, match="only connect to loopback"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed


def test_loopback_connections_go_through():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
