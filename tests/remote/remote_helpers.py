"""Names the remote tests share (imported by conftest.py and by test modules: a module importing
`conftest` by name gets whichever folder's conftest was imported first)."""

from __future__ import annotations

import time

PROJECT = "demo"


def wait_for(cond, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
