"""Reliability fixtures: one sandbox per module (its own temp folder), a small project holding
the example training script, and a transcript of every output the tests capture, scanned for
credentials and presigned URLs when the session ends (:func:`_no_secret_in_any_output`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rel_helpers import TRANSCRIPT, leaks_in, record
from sandbox_env import make_project, running_sandbox

from runctl_jupyter import api
from runctl_jupyter.sandbox import control

SERVER_LOG = "sandbox server.log"
_SANDBOXES_RECORDED: list[Path] = []  # the module sandboxes whose disks and server log went into TRANSCRIPT


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
    record(SERVER_LOG, (folder / "server.log").read_bytes())  # (every server writes one)
    _SANDBOXES_RECORDED.append(folder)


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_any_output():
    """No credential or presigned URL appears in any output the reliability tests captured: every CLI
    stdout/stderr, every followed log, and (recorded when each module's sandbox ends, which is before
    this session fixture ends) every run's log and meta.json on the instances' disks and the sandbox
    server's own log. Checked when the session ends, in every process that ran a reliability test (each
    xdist worker scans what it captured); a leak is an error at the teardown of the last test."""
    yield
    leaks = leaks_in(TRANSCRIPT)
    if leaks:
        pytest.fail("credentials or presigned URLs in the tests' output:\n" + "\n".join(leaks[:20]), pytrace=False)
    # The scan really looked at something: where a module's sandbox ran, besides its server log (which
    # _record_disk_logs insists on), what the tests captured themselves (CLI output, followed logs…).
    captured = sum(len(t) for where, t in TRANSCRIPT if where != SERVER_LOG)
    if _SANDBOXES_RECORDED and not captured:
        pytest.fail(f"the secret scan got no captured output from the tests on {len(_SANDBOXES_RECORDED)} "
                    "sandbox(es): is rel_helpers.record still called?", pytrace=False)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A sandbox per test module (so the environment is put back between modules), short delays."""
    folder = tmp_path_factory.mktemp("rel-sandbox")
    with running_sandbox(folder):
        yield control.status(folder)
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
