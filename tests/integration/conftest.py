"""Sandbox integration fixtures: one sandbox for the session, the real backend pointed at it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runctl_jupyter import api

REPO = Path(__file__).resolve().parents[2]


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


def run_cli(*args: str, env: dict | None = None, unset: tuple[str, ...] = (), cwd: Path | None = None,
            ) -> subprocess.CompletedProcess:
    """The `runctl` console script in a subprocess (same interpreter, same environment)."""
    full = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run([sys.executable, "-m", "runctl_jupyter.cli", *args], capture_output=True, text=True,
                          env=full, cwd=cwd or REPO, timeout=300)
