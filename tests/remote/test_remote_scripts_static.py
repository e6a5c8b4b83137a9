"""The scripts themselves: bash syntax, shellcheck (when installed), the layout of command_for."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runctl_jupyter.remote import (
    COMMON_SOURCE_LINE,
    command_for,
    script_path,
    script_text,
    scripts_to_ship,
    sources_common,
)

NAMES = ("launch", "status", "stop", "checkpoints", "runs")
USERS_OF_COMMON = ("launch", "status", "stop", "checkpoints", "runs", "guardian")
ALL_SCRIPTS = sorted(p.stem for p in Path(script_path("common")).parent.glob("*.sh"))


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_bash_syntax(name):
    r = subprocess.run(["bash", "-n", script_path(name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", ALL_SCRIPTS)
def test_shellcheck_clean(name):
    exe = shutil.which("shellcheck")
    if exe is None:
        pytest.skip("shellcheck not installed")
    # -x -P SCRIPTDIR: follow `source common.sh` the way bash does, from the script's own folder
    r = subprocess.run([exe, "-s", "bash", "-x", "-P", "SCRIPTDIR", script_path(name)], capture_output=True, text=True)
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


@pytest.mark.parametrize("name", USERS_OF_COMMON)
def test_shared_helpers_come_from_common_sh(name):
    text = script_text(name)
    assert sources_common(name) and text.count(COMMON_SOURCE_LINE) == 1
    assert "\ndie() {" not in text and "\nlock_inspect() {" not in text  # defined once, in common.sh


def test_command_for_ships_common_once_beside_the_scripts(tmp_path):
    assert scripts_to_ship("launch", ["sync_apply", "guardian"]) == ["launch", "sync_apply", "guardian", "common"]
    assert scripts_to_ship("tail") == ["tail"]
    cmd = command_for("launch", [], with_scripts=["guardian"])
    assert cmd.count('cat > "$d/common.sh"') == 1 and cmd.count("\ndie() {") == 1
    # run through /bin/sh: common.sh is found and the script reaches its own usage check
    r = subprocess.run(["/bin/sh", "-c", command_for("status", [], {"RUNCTL_ROOT": str(tmp_path)})],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("runctl: usage: status.sh")
