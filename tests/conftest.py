"""The sandbox the sandbox-backed test folders share (integration, guardian, widgets).

tests/reliability has its own per module (short delays, faults); tests/sandbox tests the server itself.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest
from sandbox_env import running_sandbox

_real_connect = socket.socket.connect


def _loopback_only(sock: socket.socket, address, *args, **kwargs):
    """Tests reach only this machine: a connection elsewhere (real AWS…) is refused, loudly."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local:
            raise ConnectionRefusedError(f"tests may only connect to loopback addresses, not {host!r}")
    return _real_connect(sock, address, *args, **kwargs)


@pytest.fixture(scope="session", autouse=True)
def _no_outside_network():
    socket.socket.connect = _loopback_only
    yield
    socket.socket.connect = _real_connect


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    """The embedded sandbox for the whole session (its own temp folder, no user config)."""
    with running_sandbox(tmp_path_factory.mktemp("sandbox")) as status:
        yield status


@pytest.fixture()
def ctx(sandbox):
    """A fresh context on the sandbox (its own API call counts)."""
    from runctl_jupyter import api

    return api.context()
