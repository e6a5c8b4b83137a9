"""Helpers for the remote-script tests: run ``runctl_jupyter/remote/*.sh`` with bash against a
temporary ``RUNCTL_ROOT`` (one per test), and clean up any training a test leaves running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from remote_helpers import PROJECT, wait_for  # noqa: F401  (re-exported for the fixtures)

from runctl_jupyter.remote import install_commands, needs_install, parse_fields, script_path

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "training" / "train_with_checkpoints.py"


def line_fields(stdout: str) -> list[dict[str, str]]:
    """Every ``@runctl`` line as its own dict (checkpoint lists repeat keys)."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("@runctl "):
            out.append(parse_fields(line))
    return out



class Instance:
    """A fake instance directory: ROOT/runctl/<project>/code holds the example training script."""

    def __init__(self, root: Path):
        self.root = root
        self.runctl = root / "runctl"
        self.lock = self.runctl / "lock"
        self.code = self.project_dir() / "code"
        self.code.mkdir(parents=True)
        shutil.copy(TRAIN_SCRIPT, self.code / "train.py")

    def project_dir(self, project: str = PROJECT) -> Path:
        return self.runctl / project

    def run_dir(self, run_id: str, project: str = PROJECT) -> Path:
        return self.project_dir(project) / "runs" / run_id

    def checkpoints(self, project: str = PROJECT) -> Path:
        return self.project_dir(project) / "checkpoints"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["RUNCTL_ROOT"] = str(self.root)
        env["RUNCTL_PYTHON"] = sys.executable
        env.update(extra or {})
        return env

    def run(self, name: str, *args, env: dict[str, str] | None = None, timeout: float = 60):
        """``bash remote/NAME.sh ARGS…`` (explicit argv list: nothing goes through a shell)."""
        return subprocess.run(
            ["bash", script_path(name), *args],
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
        )

    def via_sh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """A ``command_for`` command through ``/bin/sh``, as SSM runs it: the scripts are installed
        first when the command finds them missing, as ``ssm.run`` does."""
        env = self.env({"RUNCTL_SCRIPTS_HOME": str(self.root.parent / f"{self.root.name}.scripts")})

        def sh(text: str) -> subprocess.CompletedProcess:
            return subprocess.run(["/bin/sh", "-c", text], capture_output=True, text=True, timeout=timeout,
                                  errors="surrogateescape", env=env, stdin=subprocess.DEVNULL)

        result = sh(command)
        if needs_install(result.returncode, result.stdout):
            for install in install_commands():
                assert sh(install).returncode == 0
            result = sh(command)
        return result

    def wait_done(self, run_id: str, project: str = PROJECT, timeout: float = 20.0) -> int:
        """Wait until the run recorded its exit code and gave the lock back; returns the code."""
        path = self.run_dir(run_id, project) / "exit_code"
        wait_for(path.exists, timeout, what=f"{path}")
        wait_for(lambda: not self.lock.exists(), timeout, what="lock release")
        return int(path.read_text().strip())

    def log(self, run_id: str, project: str = PROJECT) -> str:
        return (self.run_dir(run_id, project) / "log").read_text(errors="surrogateescape")

    # helpers, reachable through the fixture (test modules do not import conftest)
    fields = staticmethod(parse_fields)
    line_fields = staticmethod(lambda stdout: line_fields(stdout))
    wait_for = staticmethod(lambda *a, **k: wait_for(*a, **k))
    args_line = staticmethod(lambda log: args_line(log))
    proc_starttime = staticmethod(lambda pid: proc_starttime(pid))
    project = PROJECT


def args_line(log: str) -> list[str]:
    for line in log.splitlines():
        if line.startswith("args: "):
            return json.loads(line[len("args: ") :])
    raise AssertionError(f"no args: line in log:\n{log}")


def proc_starttime(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(") ", 1)[1].split()[19]


@pytest.fixture
def inst(tmp_path):
    instance = Instance(tmp_path / "instance")
    yield instance
    # never leave a training running: stop whatever holds this instance's lock (it kills after the wait)
    if instance.lock.exists():
        instance.run("stop", PROJECT, "5")


@pytest.fixture
def make_inst(tmp_path):
    """Instances at chosen paths under tmp_path (e.g. with spaces and quotes in ROOT)."""
    made = []

    def make(name: str) -> Instance:
        instance = Instance(tmp_path / name)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        if instance.lock.exists():
            instance.run("stop", PROJECT, "5")
