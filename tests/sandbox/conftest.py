"""Sandbox fixtures: one sandbox server per test session, in a temporary folder."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest
from sandbox_env import TEST_DELAYS
from sandbox_helpers import Sandbox

from runctl_jupyter.sandbox import control

_AWS_VARS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
             "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A running sandbox (short delays) and a boto3 client factory pointed at it; one per module, so
    the AWS variables it sets aside are back before any other folder's tests run."""
    saved = {k: os.environ.pop(k) for k in _AWS_VARS if k in os.environ}
    directory = tmp_path_factory.mktemp("sandbox")
    info = control.start(directory)
    try:
        control.set_delays(info, **TEST_DELAYS)
        yield Sandbox(info)
    finally:
        try:
            control.stop(directory)
        finally:
            if control.status(directory) is not None:  # stop() failed: do not leave it behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGKILL)
            os.environ.update(saved)


@pytest.fixture
def sb(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session sandbox, with clock and faults put back after each test."""
    yield sandbox
    control.unfreeze_clock(sandbox.info, reset=True)
    control.set_faults(sandbox.info, throttle=0.0, drop=0.0, latency_ms=0, services=None, reset=True)
