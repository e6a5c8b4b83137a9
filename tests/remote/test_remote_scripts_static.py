"""The scripts themselves: bash syntax, shellcheck (when installed), the layout of command_for."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from runctl_jupyter.remote import script_path, script_text

NAMES = ("launch", "status", "stop", "checkpoints", "runs")


@pytest.mark.parametrize("name", NAMES)
def test_bash_syntax(name):
    r = subprocess.run(["bash", "-n", script_path(name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", NAMES)
def test_shellcheck_clean(name):
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck not installed")
    r = subprocess.run([exe, "-s", "bash", script_path(name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


@pytest.mark.parametrize("name", NAMES)
def test_style(name):
    text = script_text(name)
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -u\n" in text
    assert "eval " not in text


@pytest.mark.parametrize("name", NAMES)
def test_usage_errors_exit_2(name, tmp_path):
    r = subprocess.run(
        ["bash", script_path(name)],
        capture_output=True,
        text=True,
        env={"RUNCTL_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 2 and r.stderr.startswith("runctl: usage:") and r.stdout == ""


def _wrapper_text() -> str:
    """The wrapper launch.sh writes into the run directory (a quoted heredoc inside launch.sh)."""
    text = script_text("launch")
    start = text.index("<<'RUNCTL_WRAPPER_END'")
    start = text.index("\n", start) + 1
    end = text.index("\nRUNCTL_WRAPPER_END\n", start)
    return "#!/usr/bin/env bash\n" + text[start : end + 1]


def test_wrapper_syntax_and_shellcheck(tmp_path):
    path = tmp_path / "wrapper.sh"
    path.write_text(_wrapper_text())
    r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    exe = shutil.which("shellcheck")
    if exe is not None:
        r = subprocess.run([exe, "-s", "bash", str(path)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout
