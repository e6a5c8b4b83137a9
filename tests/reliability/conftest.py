"""Reliability fixtures: one sandbox per module (its own temp folder), a small project holding
the example training script, and a transcript of every output the tests capture (scanned for
credentials and presigned URLs by test_zz_no_secrets.py, which runs last)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rel_helpers import record
from sandbox_env import make_project, running_sandbox

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
    """A sandbox per test module (so the environment is put back between modules), short delays."""
    folder = tmp_path_factory.mktemp("rel-sandbox")
    with running_sandbox(folder):
        info = control.status(folder)
        control.set_delays(info, pending=0.1, stopping=0.1, ssm_online=0.15, kill_grace=0.3)
        yield info
        _record_disk_logs(folder)


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> Path:
    """A small project (pyproject.toml + training/ the example script) so that syncing it is quick."""
    root = tmp_path_factory.mktemp("relproj") / "relproj"
    make_project(root, "relproj", "training")
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
