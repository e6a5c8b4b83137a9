"""Guardian tests: one sandbox for the folder (the pattern of tests/integration/conftest.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from runctl_jupyter import api

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gsandbox")
    saved = dict(os.environ)
    os.environ["RUNCTL_SANDBOX_DIR"] = str(folder)
    os.environ["RUNCTL_CONFIG_FILE"] = str(folder / "no-user-config.toml")
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    status = api.sandbox_start(str(folder))
    yield status
    api.sandbox_stop(str(folder))
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture()
def ctx(sandbox):
    return api.context()


@pytest.fixture()
def instance(ctx):
    """A fresh running on-demand t3.micro, terminated afterwards."""
    inst = api.create(ctx, "t3.micro", wait=True, project="gtest")
    yield inst.instance_id
    _cleanup(ctx, inst.instance_id)


@pytest.fixture()
def spot_instance(ctx):
    """A fresh running one-time spot t3.micro, terminated afterwards."""
    inst = api.create(ctx, "t3.micro", wait=True, project="gtest", spot=True)
    yield inst.instance_id
    _cleanup(ctx, inst.instance_id)


def _cleanup(ctx, iid: str) -> None:
    if api.status(ctx, iid).state not in ("terminated", "shutting-down"):
        api.terminate(ctx, iid, force=True)
