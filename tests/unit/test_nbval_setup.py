"""What the notebooks' nbval run depends on: its own sandbox folder, and help text of a fixed width."""

from __future__ import annotations

import io
import re
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


def _nbval_commands(*make_args: str) -> list[str]:
    out = subprocess.run(["make", "-s", "-n", "-C", str(ROOT), "test", *make_args],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "--nbval" in line]


@pytest.mark.parametrize("developer_dir", [None, "/home/dev/my-world", "/tmp/runctl"])
def test_nbval_runs_with_a_sandbox_folder_the_sanitizer_matches(developer_dir: str | None) -> None:
    # A developer's own RUNCTL_SANDBOX_DIR (here without "sandbox" in it) must not reach nbval.
    env_args = [] if developer_dir is None else [f"RUNCTL_SANDBOX_DIR={developer_dir}"]
    commands = _nbval_commands(*env_args)
    assert len(commands) == 2, commands  # today's clock, and a clock set elsewhere
    for command in commands:
        match = re.match(r'RUNCTL_SANDBOX_DIR="?([^"\s]+)"? ', command)
        assert match, f"the nbval command does not set its own RUNCTL_SANDBOX_DIR: {command}"
        folder = match.group(1)
        assert folder.startswith(str(ROOT / "build")), folder
        # What the notebooks print about the folder (relative to their own), as the sanitizer sees it.
        shown = shown_path_from(folder, ROOT / "notebooks")
        assert shown.startswith("../build/"), shown
        for said in (shown, folder):
            line = f"[sandbox] Stopped the sandbox and every instance process ({said}); AWS settings restored"
            assert _sanitize(line) == ("[sandbox] Stopped the sandbox and every instance process (SANDBOX_DIR); "
                                       "AWS settings restored")


def shown_path_from(path: str, cwd: Path) -> str:
    import os

    from runctl_jupyter.api_sandbox import shown_path

    before = Path.cwd()
    os.chdir(cwd)
    try:
        return shown_path(path)
    finally:
        os.chdir(before)


def test_a_folder_is_shown_without_the_machines_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "p" / "notebooks").mkdir(parents=True)
    assert shown_path_from(str(tmp_path / "home" / "p" / "build" / "sb"), tmp_path / "home" / "p" / "notebooks") \
        == "../build/sb"
    assert shown_path_from(str(tmp_path / "home" / ".runctl" / "sandbox"), tmp_path / "home" / "p" / "notebooks") \
        == "~/.runctl/sandbox"
    assert shown_path_from("/opt/elsewhere/sb", tmp_path / "home" / "p" / "notebooks") == "/opt/elsewhere/sb"


def test_make_test_runs_the_notebooks_again_months_ahead_and_outside_utc() -> None:
    """What the guides show must not depend on the day or the timezone CI runs on (it once went red
    the week after the outputs were stored). faketime with a *relative* offset moves every process
    of the run onto one clock (an absolute date would stop time.sleep)."""
    shifted = [c for c in _nbval_commands() if "faketime" in c]
    assert len(shifted) == 1, _nbval_commands()
    offset = re.search(r"faketime -f '\+(\d+)d'", shifted[0])
    assert offset and int(offset.group(1)) >= 90, shifted[0]
    tz = re.search(r"\bTZ=(\S+)", shifted[0])
    assert tz and tz.group(1) not in ("UTC", "Etc/UTC", "GMT"), shifted[0]
    assert "notebooks" in shifted[0].split()


def test_the_sanitizer_does_not_hide_dates() -> None:
    # A frozen sandbox clock freezes every date the notebooks show, so nbval compares them as they are.
    assert _sanitize("prices: pricing-api (2026-11-23)") == "prices: pricing-api (2026-11-23)"
    assert _sanitize("Started run 20261123T090000Z-9f04a9 on") == "Started run 20261123T090000Z-RAND on"


def test_help_has_the_same_width_whatever_terminal_started_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # `%runctl --help` is in the quickstart notebook, whose outputs nbval compares strictly.
    monkeypatch.setattr("sys.stdout", io.StringIO())  # a kernel's stdout is no terminal
    narrow = grammar.help_text()
    monkeypatch.setenv("COLUMNS", "200")
    assert grammar.help_text() == narrow
    assert max(len(line) for line in narrow.splitlines()) <= 80
