"""Helpers for the reliability tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from runctl_jupyter.sandbox import control

REPO = Path(__file__).resolve().parents[2]
# (where it came from, text): what this process's reliability tests captured, scanned at the session's
# end by conftest.py's _no_secret_in_any_output (each xdist worker scans its own)
TRANSCRIPT: list[tuple[str, str]] = []
FORBIDDEN = ["X-Amz-Signature", "X-Amz-Credential", "AWS_SECRET_ACCESS_KEY", "Signature=",
             "aws_secret_access_key", "AWSAccessKeyId="]
# The sandbox's test secret (control.env_for) — matched as a word: "testing" alone.
SECRET = re.compile(r"(?<![A-Za-z_])" + re.escape(control.env_for(control.SandboxInfo(
    dir=None, endpoint="", pid=0, port=0, started=""))["AWS_SECRET_ACCESS_KEY"]) + r"(?![A-Za-z_])")


def record(where: str, *texts: str | bytes | None) -> None:
    for text in texts:
        if text:
            TRANSCRIPT.append((where, text.decode("utf-8", "replace") if isinstance(text, bytes) else text))


def leaks_in(transcript: list[tuple[str, str]]) -> list[str]:
    """Each credential or presigned-URL part found in ``transcript``: where, what, and the text around it."""
    leaks = []
    for where, text in transcript:
        for needle in FORBIDDEN:
            if needle in text:
                i = text.index(needle)
                leaks.append(f"{where}: {needle!r} … {text[max(0, i - 80):i + 40]!r}")
        m = SECRET.search(text)
        if m:
            leaks.append(f"{where}: the test secret … {text[max(0, m.start() - 80):m.end() + 40]!r}")
    return leaks


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
