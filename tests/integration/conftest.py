"""Sandbox integration fixtures: one sandbox for the session, the real backend pointed at it."""

from __future__ import annotations

import pytest
from sandbox_env import fresh_instance


@pytest.fixture()
def instance(ctx):
    """A fresh running t3.micro, terminated afterwards."""
    with fresh_instance(ctx, "itest") as iid:
        yield iid


@pytest.fixture()
def shell(sandbox):
    """A real IPython InteractiveShell with the extension loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "runctl_jupyter")
    yield ip
