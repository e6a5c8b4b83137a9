"""`make test` runs tests/ on xdist workers, a file's tests on one worker (a module-scoped fixture is set up once)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pytest_lines(*make_args: str) -> list[str]:
    out = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "test", *make_args],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if " -m pytest " in line and line.rstrip().endswith(" tests")]


def test_the_suite_runs_on_workers_a_file_each_without_nbval() -> None:
    (line,) = _pytest_lines()
    words = line.split()
    assert words[words.index("-n") + 1] == "4" and words[words.index("--dist") + 1] == "loadfile", line
    assert "no:nbval" in words and "--nbval" not in words, line


def test_the_worker_count_can_be_chosen() -> None:
    (line,) = _pytest_lines("PYTEST_WORKERS=8")
    assert " -n 8 " in line, line
