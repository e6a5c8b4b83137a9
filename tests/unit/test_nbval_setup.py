"""What the notebooks' nbval run depends on: its own sandbox folder, and help text of a fixed width."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runctl_jupyter import grammar

ROOT = Path(__file__).resolve().parents[2]


def _sanitize(text: str) -> str:
    """As nbval does with --nbval-sanitize-with tests/nbval_sanitize.cfg."""
    from nbval.plugin import get_sanitize_patterns

    for regex, replace in get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text()):
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("developer_dir", [None, "/home/dev/my-world", "/tmp/runctl"])
def test_nbval_runs_with_a_sandbox_folder_the_sanitizer_matches(developer_dir: str | None) -> None:
    # A developer's own RUNCTL_SANDBOX_DIR (here without "sandbox" in it) must not reach nbval.
    env_args = [] if developer_dir is None else [f"RUNCTL_SANDBOX_DIR={developer_dir}"]
    out = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "test", *env_args],
                         capture_output=True, text=True, check=True).stdout
    nbval = [line for line in out.splitlines() if "--nbval" in line]
    assert len(nbval) == 1, out
    match = re.match(r'RUNCTL_SANDBOX_DIR="?([^"\s]+)"? ', nbval[0])
    assert match, f"the nbval command does not set its own RUNCTL_SANDBOX_DIR: {nbval[0]}"
    folder = match.group(1)
    assert folder.startswith(str(ROOT / "build")), folder
    # What the notebooks print about the folder, as the sanitizer sees it.
    line = f"[sandbox] Stopped the sandbox and every instance process ({folder}); AWS settings restored"
    assert _sanitize(line) == "[sandbox] Stopped the sandbox and every instance process (SANDBOX_DIR); AWS settings restored"


def test_help_has_the_same_width_whatever_terminal_started_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # `%runctl --help` is in the quickstart notebook, whose outputs nbval compares strictly.
    monkeypatch.setattr("sys.stdout", io.StringIO())  # a kernel's stdout is no terminal
    narrow = grammar.help_text()
    monkeypatch.setenv("COLUMNS", "200")
    assert grammar.help_text() == narrow
    assert max(len(line) for line in narrow.splitlines()) <= 80
