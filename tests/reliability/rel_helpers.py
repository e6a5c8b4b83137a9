"""Helpers for the reliability tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRANSCRIPT: list[tuple[str, str]] = []  # (where it came from, text): scanned by test_zz_no_secrets.py


def record(where: str, *texts: str | bytes | None) -> None:
    for text in texts:
        if text:
            TRANSCRIPT.append((where, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))


def run_cli(*args: str, env: dict | None = None, unset: tuple[str, ...] = (), cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m runctl_jupyter.cli ARGS` in a subprocess; its output goes into the transcript."""
    full = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in unset}
    r = subprocess.run([sys.executable, "-m", "runctl_jupyter.cli", *args], capture_output=True, text=True,
                       env=full, cwd=cwd or REPO, timeout=timeout)
    record(f"cli {' '.join(args)[:80]}", r.stdout, r.stderr)
    return r


def check_error_shape(r: subprocess.CompletedProcess, code: int) -> None:
    """Exit code as DESIGN.md says; stderr: one error line, `To resolve:`, numbered steps; no traceback."""
    import re

    assert r.returncode == code, f"exit {r.returncode}, wanted {code}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    lines = r.stderr.rstrip("\n").split("\n")
    assert lines[0].startswith("Error: ") and len(lines[0]) > len("Error: "), r.stderr
    assert len(lines) >= 3 and lines[1] == "To resolve:", r.stderr
    for i, line in enumerate(lines[2:], 1):
        assert re.match(rf"  {i}\. \S", line), f"step line {line!r} in\n{r.stderr}"


def import_benchmarks():
    """The benchmarks package lives at the repository's root (not installed)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import benchmarks.bench_logs

    return benchmarks.bench_logs
