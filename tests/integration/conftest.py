"""Sandbox integration fixtures: one sandbox for the session, the real backend pointed at it."""

from __future__ import annotations

import os

import pytest

from runctl_jupyter import api


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sandbox")
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
    """A fresh running t3.micro, terminated afterwards."""
    inst = api.create(ctx, "t3.micro", wait=True, project="itest")
    yield inst.instance_id
    api.terminate(ctx, inst.instance_id, force=True)


@pytest.fixture()
def shell(sandbox):
    """A real IPython InteractiveShell with the extension loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "runctl_jupyter")
    yield ip
