"""The sandbox the sandbox-backed test folders share (integration, guardian, widgets).

tests/reliability has its own per module (short delays, faults); tests/sandbox tests the server itself.
"""

from __future__ import annotations

import pytest
from sandbox_env import running_sandbox


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
