"""Reliability fixtures: one sandbox for the session (its own temp folder), a small project holding
the example training script, and a transcript of every output the tests capture (scanned for
credentials and presigned URLs by test_zz_no_secrets.py, which runs last)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from rel_helpers import REPO, record

from runctl_jupyter import api
from runctl_jupyter.sandbox import control


def _record_disk_logs(folder: Path) -> None:
    """Every run's log and meta.json on every instance disk, plus the server's own log."""
    for disk in sorted(folder.glob("instances/*")):
        try:
            paths = sorted(disk.glob("runctl/*/runs/*/*"))
            contents = [(p, p.read_bytes()) for p in paths if p.name in ("log", "meta.json") and p.is_file()]
        except FileNotFoundError:
            continue  # the instance was terminated while we read: its disk, logs included, is gone
        for path, data in contents:
            record(str(path), data)
    if (folder / "server.log").is_file():
        record("sandbox server.log", (folder / "server.log").read_bytes())


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A sandbox per test module (so the environment is put back between modules)."""
    folder = tmp_path_factory.mktemp("rel-sandbox")
    saved = dict(os.environ)
    os.environ["RUNCTL_SANDBOX_DIR"] = str(folder)
    os.environ["RUNCTL_CONFIG_FILE"] = str(folder.parent / "rel-no-user-config.toml")
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    for key in [k for k in os.environ if k.startswith("RUNCTL_") and k not in ("RUNCTL_SANDBOX_DIR",
                                                                                "RUNCTL_CONFIG_FILE",
                                                                                "RUNCTL_SOAK_EXAMPLES")]:
        os.environ.pop(key)
    api.sandbox_start(str(folder))
    info = control.status(folder)
    control.set_delays(info, pending=0.1, stopping=0.1, ssm_online=0.15, kill_grace=0.3)
    yield info
    _record_disk_logs(folder)
    api.sandbox_stop(str(folder))
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """A small project (pyproject.toml + the example script) so that syncing it is quick."""
    root = tmp_path_factory.mktemp("relproj") / "relproj"
    (root / "training").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "relproj"\nversion = "0.1.0"\n')
    shutil.copy(REPO / "training" / "train_with_checkpoints.py", root / "training" / "train_with_checkpoints.py")
    return root


@pytest.fixture(scope="session")
def script(project) -> Path:
    return project / "training" / "train_with_checkpoints.py"


@pytest.fixture()
def ctx(sandbox):
    return api.context()


@pytest.fixture()
def faults_off(sandbox):
    yield sandbox
    control.set_faults(sandbox, throttle=0.0, drop=0.0, latency_ms=0, services=None, reset=True)
