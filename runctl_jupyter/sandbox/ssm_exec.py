"""Running AWS-RunShellScript invocations as real processes on an instance's disk.

Each invocation is ``/bin/sh -c <commands joined by newlines>`` (as the SSM agent runs the script),
in its own session, with cwd = a folder of the agent's for this command (AWS: .../orchestration/<command
id>/awsrunShellScript/0.awsrunShellScript, never the login user's home: a relative path in a script
means that folder on AWS, so here it means DIR/ssm/.../cwd), stdout/stderr to files under DIR/ssm/, and a
clean environment carrying the instance marker (see processes.py) — never the server's credentials.
The process is the server's child, so it keeps running whatever happens to the client that sent it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from . import gpus
from .clock import call_later
from .processes import DIR_VAR, INSTANCE_VAR
from .world import World

STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DONE = {"Success", "Failed", "Cancelled", "TimedOut"}


@dataclass
class Invocation:
    command_id: str
    iid: str
    out_path: Path
    err_path: Path
    requested: datetime
    status: str = "Pending"
    response_code: int = -1
    started: datetime | None = None
    ended: datetime | None = None
    proc: subprocess.Popen[bytes] | None = None
    cancel_requested: bool = False
    _t0: float = 0.0

    @property
    def done(self) -> bool:
        return self.status in DONE

    def elapsed(self) -> str:
        if self.started is None:
            return ""
        end = self.ended or self.started
        return f"PT{(end - self.started).total_seconds():.3f}S"

    def output(self, which: str) -> str:
        """stdout/stderr as SSM returns it: only once the command ended, cut at the AWS limit."""
        if not self.done:
            return ""
        path, limit = (self.out_path, STDOUT_LIMIT) if which == "stdout" else (self.err_path, STDERR_LIMIT)
        try:
            with path.open("rb") as handle:
                raw = handle.read(limit * 4)
        except FileNotFoundError:
            return ""
        return raw.decode("utf-8", errors="replace")[:limit]


@dataclass
class Command:
    command_id: str
    region: str
    document: str
    parameters: dict[str, list[str]]
    instance_ids: list[str]
    requested: datetime
    comment: str = ""
    timeout_seconds: int = 3600
    execution_timeout: int = 3600
    invocations: dict[str, Invocation] = field(default_factory=dict)
    sent_at: float = field(default_factory=time.monotonic)  # real time: GetCommandInvocation's lag

    @property
    def status(self) -> str:
        states = [inv.status for inv in self.invocations.values()]
        if any(s in ("Pending", "InProgress") for s in states):
            return "InProgress" if any(s != "Pending" for s in states) else "Pending"
        for final in ("Cancelled", "TimedOut", "Failed"):
            if final in states:
                return final
        return "Success"

    def counts(self) -> dict[str, int]:
        states = [inv.status for inv in self.invocations.values()]
        return {"TargetCount": len(states), "CompletedCount": sum(s in DONE for s in states),
                "ErrorCount": sum(s in ("Failed", "TimedOut") for s in states), "DeliveryTimedOutCount": 0}


class CommandStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.commands: dict[str, Command] = {}

    def add(self, command: Command) -> None:
        with self.lock:
            self.commands[command.command_id] = command

    def get(self, command_id: str) -> Command | None:
        with self.lock:
            return self.commands.get(command_id)

    def all(self) -> list[Command]:
        with self.lock:
            return sorted(self.commands.values(), key=lambda c: c.requested, reverse=True)


class Runner:
    def __init__(self, world: World, store: CommandStore) -> None:
        self.world = world
        self.store = store
        self.gpu_state: dict[str, str] = {}  # iid → its GPUs' state file (GPU types only)

    def note_type(self, iid: str, instance_type: str) -> None:
        """What the instance is (call with the moto lock held): a GPU type's commands find nvidia-smi."""
        path = gpus.prepare(self.world, iid, instance_type)
        if path is None:
            self.gpu_state.pop(iid, None)
        else:
            self.gpu_state[iid] = str(path)

    def env_for(self, iid: str) -> dict[str, str]:
        home = str(self.world.instance_dir(iid))
        gpu_state = self.gpu_state.get(iid)
        # the NVIDIA driver's nvidia-smi, on GPU types only (in /usr/bin on a Deep Learning AMI)
        gpu_path = f"{gpus.bin_dir(self.world)}:" if gpu_state else ""
        return {
            # as SSM runs commands on AWS: no HOME, the system PATH (its python3: see server._write_bin)
            "PATH": f"{self.world.bin_dir}:{gpu_path}{BASE_PATH}",
            **({"RUNCTL_SANDBOX_GPUS": gpu_state} if gpu_state else {}),
            "LANG": "C.UTF-8",
            "SHELL": "/bin/sh",
            "RUNCTL_ROOT": home,
            # root's /var/lib/runctl/scripts on AWS: in the sandbox, inside the instance's own folder
            "RUNCTL_SCRIPTS_HOME": str(self.world.instance_dir(iid) / "var" / "lib" / "runctl" / "scripts"),
            INSTANCE_VAR: iid,
            DIR_VAR: str(self.world.root),
            "RUNCTL_IMDS_ENDPOINT": f"{self.world.endpoint}/_imds/{iid}",
            "RUNCTL_SANDBOX_ENDPOINT": self.world.endpoint,
        }

    def new_command(self, region: str, document: str, parameters: dict[str, list[str]],
                    instance_ids: list[str], comment: str, timeout_seconds: int) -> Command:
        command_id = str(uuid.uuid4())
        now = self.world.clock.now()
        try:
            execution_timeout = int((parameters.get("executionTimeout") or ["3600"])[0])
        except ValueError:
            execution_timeout = 3600
        command = Command(command_id=command_id, region=region, document=document, parameters=parameters,
                          instance_ids=list(instance_ids), requested=now, comment=comment,
                          timeout_seconds=timeout_seconds, execution_timeout=execution_timeout)
        out_dir = self.world.ssm_dir / command_id
        for iid in instance_ids:
            (out_dir / iid).mkdir(parents=True, exist_ok=True)
            command.invocations[iid] = Invocation(command_id=command_id, iid=iid, requested=now,
                                                  out_path=out_dir / iid / "stdout",
                                                  err_path=out_dir / iid / "stderr")
        self.store.add(command)
        return command

    def launch(self, command: Command) -> None:
        script = "\n".join(command.parameters.get("commands", []))
        delivery = self.world.delays.ssm_delivery
        for inv in command.invocations.values():
            if delivery > 0:  # the agent picks the command up a moment later (Pending meanwhile)
                call_later(delivery, self._spawn, command, inv, script, name="sandbox-ssm-delivery")
            else:
                self._spawn(command, inv, script)

    def _spawn(self, command: Command, inv: Invocation, script: str) -> None:
        if inv.cancel_requested or inv.status != "Pending":
            return
        disk = self.world.instance_dir(inv.iid)
        disk.mkdir(parents=True, exist_ok=True)
        cwd = inv.out_path.parent / "cwd"  # the agent's folder for this command, not the instance's home
        cwd.mkdir(parents=True, exist_ok=True)
        workdir = (command.parameters.get("workingDirectory") or [""])[0]
        if workdir:
            candidate = (disk / workdir.lstrip("/")).resolve()
            if candidate.is_relative_to(disk.resolve()) and candidate.is_dir():
                cwd = candidate
        with inv.out_path.open("wb") as out, inv.err_path.open("wb") as err:
            inv.proc = subprocess.Popen(["/bin/sh", "-c", script], cwd=cwd, env=self.env_for(inv.iid),
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        start_new_session=True, close_fds=True)
        inv._t0 = time.monotonic()
        inv.started = self.world.clock.now()
        inv.status = "InProgress"
        threading.Thread(target=self._wait, args=(command, inv), daemon=True,
                         name=f"ssm-{inv.iid}-{command.command_id[:8]}").start()

    def _wait(self, command: Command, inv: Invocation) -> None:
        assert inv.proc is not None
        timed_out = False
        try:
            code = inv.proc.wait(timeout=command.execution_timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(inv.proc.pid, signal.SIGKILL)
            code = inv.proc.wait()
        assert inv.started is not None
        inv.ended = inv.started + timedelta(seconds=time.monotonic() - inv._t0)
        inv.response_code = code if code >= 0 else 128 - code
        if inv.cancel_requested:
            inv.status, inv.response_code = "Cancelled", -1
        elif timed_out:
            inv.status = "TimedOut"
        else:
            inv.status = "Success" if code == 0 else "Failed"

    def cancel(self, command: Command, iids: list[str] | None) -> None:
        for iid, inv in command.invocations.items():
            if iids and iid not in iids:
                continue
            if inv.done:
                continue
            inv.cancel_requested = True
            if inv.proc is not None:
                _kill_group(inv.proc.pid, signal.SIGTERM)
                call_later(1.0, _kill_group, inv.proc.pid, signal.SIGKILL, name="sandbox-ssm-cancel")
            else:
                inv.status = "Cancelled"


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        return


def invocation_view(command: Command, inv: Invocation) -> dict[str, Any]:
    """GetCommandInvocation's response shape."""
    from .clock import iso

    return {
        "CommandId": command.command_id, "InstanceId": inv.iid, "Comment": command.comment,
        "DocumentName": command.document, "DocumentVersion": "$DEFAULT", "PluginName": "aws:runShellScript",
        "ResponseCode": inv.response_code,
        "ExecutionStartDateTime": iso(inv.started) if inv.started else "",
        "ExecutionElapsedTime": inv.elapsed(),
        "ExecutionEndDateTime": iso(inv.ended) if inv.ended else "",
        "Status": inv.status, "StatusDetails": inv.status,
        "StandardOutputContent": inv.output("stdout"), "StandardOutputUrl": "",
        "StandardErrorContent": inv.output("stderr"), "StandardErrorUrl": "",
        "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
    }
