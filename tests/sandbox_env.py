"""The embedded sandbox for a test folder, shared by the folders' conftest.py files.

A sandbox runs in its own temp folder with no user config file and no real credentials in the
environment; the environment is put back afterwards. Instances made for a test are terminated after
it (unless the test already ended them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runctl_jupyter import api
from runctl_jupyter.sandbox import control

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "training" / "train_with_checkpoints.py"
_KEPT_RUNCTL_VARS = ("RUNCTL_SOAK_EXAMPLES",)
# Seconds each sandbox transition takes in the tests (the server's defaults suit a person watching the
# demo): a test that needs a slower world (a transition to catch midway) sets its own and puts these back.
TEST_DELAYS = {"pending": 0.1, "stopping": 0.1, "ssm_online": 0.15, "kill_grace": 0.3}


@contextmanager
def running_sandbox(folder: Path) -> Iterator[Any]:
    """Start the sandbox in ``folder`` (:data:`TEST_DELAYS`) with a clean environment; yield its status; stop it."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("RUNCTL_") and k not in _KEPT_RUNCTL_VARS]:
        os.environ.pop(key)  # a developer's RUNCTL_* settings must not leak into the tests
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    os.environ["RUNCTL_SANDBOX_DIR"] = str(folder)
    os.environ["RUNCTL_CONFIG_FILE"] = str(folder.parent / f"{folder.name}-no-user-config.toml")
    try:
        status = api.sandbox_start(str(folder))
        try:
            control.set_delays(control.status(folder), **TEST_DELAYS)
            yield status
        finally:
            api.sandbox_stop(str(folder))
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def fresh_instance(ctx: Any, project: str, **create: Any) -> Iterator[str]:
    """A running t3.micro (``create`` passes e.g. ``spot=True``), terminated afterwards."""
    iid = api.create(ctx, "t3.micro", wait=True, project=project, **create).instance_id
    try:
        yield iid
    finally:
        if api.status(ctx, iid).state not in ("terminated", "shutting-down"):
            api.terminate(ctx, iid, force=True)


def make_project(folder: Path, name: str, script_folder: str = "") -> Path:
    """A tiny project (pyproject.toml + the example script) so that syncing it is quick; the script."""
    (folder / script_folder).mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0.1.0"\n')
    script = folder / script_folder / TRAIN_SCRIPT.name
    script.write_bytes(TRAIN_SCRIPT.read_bytes())
    return script
