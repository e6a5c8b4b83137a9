"""Fleet fixtures: a project holding the stdlib rendezvous script, and fleets terminated afterwards."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_helpers import PROJECT, RENDEZVOUS, make_fleet


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A tiny project (pyproject.toml + training/fleet_rendezvous.py as rendezvous.py); its folder."""
    root = tmp_path / PROJECT
    root.mkdir()
    (root / "pyproject.toml").write_text(f'[project]\nname = "{PROJECT}"\nversion = "0.1.0"\n')
    shutil.copy(RENDEZVOUS, root / "rendezvous.py")
    return root


@pytest.fixture()
def fleet3(ctx) -> Iterator[str]:
    """A running 3-node t3.micro fleet, terminated afterwards."""
    yield from make_fleet(ctx, 3)


@pytest.fixture()
def fleet2(ctx) -> Iterator[str]:
    """A running 2-node t3.micro fleet, terminated afterwards."""
    yield from make_fleet(ctx, 2)


@pytest.fixture()
def shell(sandbox):
    """A real IPython InteractiveShell with the extension loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "runctl_jupyter")
    yield ip
