"""Helpers shared by the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict | None = None, unset: tuple[str, ...] = (), cwd: Path | None = None,
            ) -> subprocess.CompletedProcess:
    """The `runctl` console script in a subprocess (same interpreter, same environment)."""
    full = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    return subprocess.run([sys.executable, "-m", "runctl_jupyter.cli", *args], capture_output=True, text=True,
                          env=full, cwd=cwd or REPO, timeout=300)
