"""``local train``: the same launcher (claim, run layout, logs) on this machine.

Runs ``remote/launch.sh`` with bash locally, with ROOT = ``~/.runctl/local`` (or
``$RUNCTL_LOCAL_ROOT``) and the project folder itself as the code directory (nothing is copied).
Logs are followed with the same byte-offset reader as remote runs.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from . import remote, training
from .errors import BackendError, GuardRefused, Step, TrainingFailed, UsageError, cmd
from .remote.replies import LaunchReply


def local_root() -> Path:
    return Path(os.environ.get("RUNCTL_LOCAL_ROOT") or Path.home() / ".runctl" / "local")


def _bash(script: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", remote.script_path(script), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120, stdin=subprocess.DEVNULL)


def fetcher(log_path: str) -> training.Fetch:
    def fetch(offset: int, max_bytes: int) -> str:
        done = _bash("tail", [log_path, str(offset), str(max_bytes)], {})
        if done.returncode != 0:
            raise BackendError(f"Could not read {log_path}: {done.stderr.strip()}", [Step("Check the file exists")])
        return done.stdout

    return fetch


def start(script: str | Path, args: list[str], project: str | None = None) -> training.Launch:
    from .sync import choose_project, project_root

    path = Path(script).expanduser()
    if not path.is_file():
        raise UsageError(f"Training script not found: {script}",
                         [Step("Check the path (it is relative to the notebook's folder)")])
    code_dir = project_root(path.resolve())
    rel = path.resolve().relative_to(code_dir).as_posix()
    name = choose_project(project, None, None, path.resolve())  # (the one rule; no settings here)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    root = local_root()
    root.mkdir(parents=True, exist_ok=True)
    env = {"RUNCTL_ROOT": str(root), "RUNCTL_CODE_DIR": str(code_dir), "RUNCTL_PYTHON": sys.executable,
           "RUNCTL_META_JSON": json.dumps({"run_id": run_id, "script": rel, "args": args, "project": name,
                                           "started": datetime.now(UTC).isoformat(timespec="seconds"),
                                           "world": "local"})}
    done = _bash("launch", [name, run_id, rel, *args], env)
    reply = LaunchReply.parse(done.stdout, done.returncode)
    if reply.refused == "running":
        holder_runs = root / "runctl" / (reply.holder_project or name) / "runs"
        follow = (f"tail -f {shlex.quote(str(holder_runs / reply.holder_run_id / 'log'))}" if reply.holder_run_id
                  else f"ls {shlex.quote(str(holder_runs))}")
        # SIGTERM to the training itself, as `stop` sends it: it saves a checkpoint and its wrapper
        # records the exit (the PID is the training's, not a process group's)
        raise GuardRefused(f"Training already running on this machine (PID: {reply.holder_pid}).",
                           [Step(f"Wait for it to finish; follow its log: {follow}"),
                            Step(f"Or stop it (it gets SIGTERM and can save a checkpoint): kill -TERM {reply.holder_pid}")])
    if not reply.started:
        raise BackendError(f"Training did not start: {done.stderr.strip().splitlines()[-1:] or done.returncode}",
                           [cmd(f"local train {script} --help", "Check the command")])
    return training.Launch("local", name, run_id, reply.pid, reply.log)


def runs_dir(launch: training.Launch) -> Path:
    """The folder holding one sub-folder (log, exit_code, meta.json) per local run of the project."""
    return Path(launch.log_path).parent.parent


def failure(result: training.TrainResult, launch: training.Launch) -> TrainingFailed:
    """A failed local run. Unlike ``training.failure`` there is no instance to ask: the log and the
    run history are plain files on this machine, so the steps are plain shell commands."""
    log = shlex.quote(launch.log_path)
    return TrainingFailed(
        f"Local training run {result.run_id} (project {result.project}) failed with exit code {result.exit_code}.",
        [Step(f"Read its full log: `tail -n 100 {log}`"),
         Step(f"See the run history (one folder per run): `ls {shlex.quote(str(runs_dir(launch)))}`")],
        result=result,
        details=["Last lines of the log:", *[f"  {line}" for line in result.log_tail.splitlines()]])


def follow_hint(launch: training.Launch) -> str:
    """How to follow a local run's log from a shell: plain ``tail -f``, not a runctl command."""
    return f"Follow its log with: tail -f {shlex.quote(launch.log_path)}"
