"""Helpers shared by the fleet tests (a module of its own: every test folder has a conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from runctl_jupyter import api
from runctl_jupyter.fleet import live_members

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RENDEZVOUS = REPO / "training" / "fleet_rendezvous.py"  # the stdlib TCP rendezvous every test runs
PROJECT = "fleetproj"


def make_fleet(ctx, nodes: int, instance_type: str = "t3.micro", **create) -> Iterator[str]:
    """A running fleet (its name), terminated afterwards (--force: a test's checkpoints are throwaway)."""
    name = f"f{uuid.uuid4().hex[:8]}"
    api.fleet_create(ctx, name, instance_type, nodes=nodes, wait=True, project=PROJECT, **create)
    try:
        yield name
    finally:
        if live_members(ctx, name):
            api.fleet_terminate(ctx, name, force=True)


def disk(sandbox, iid: str) -> Path:
    """An instance's disk in the sandbox."""
    return Path(sandbox.directory) / "instances" / iid


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The `runctl` console script in a subprocess (same interpreter, same environment)."""
    return subprocess.run([sys.executable, "-m", "runctl_jupyter.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), cwd=cwd, timeout=300)
