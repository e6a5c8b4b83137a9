"""Client of the sandbox server: start/attach, stop, status, environment, and control calls.

Imported by the front ends and the API: it uses only the standard library (urllib) — never moto or
boto3. ``start()`` attaches to the server of a sandbox folder if one is alive, or spawns it detached
(it outlives the kernel or shell that started it); an fcntl lock makes concurrent starts spawn one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import BackendError, SandboxNotRunning, Step, cmd

REGION = "us-east-1"
STATE_FILE = "server.json"
LOG_FILE = "server.log"
LOCK_FILE = ".start.lock"
# What a sandbox folder may contain; --fresh refuses to wipe a folder holding anything else.
CLIENT_DIR = "client"  # the notebook side's caches for this world (code manifests, prices)
_OWN_ENTRIES = {STATE_FILE, LOG_FILE, LOCK_FILE, "instances", "snapshots", "ssm", "bin", "gpus", CLIENT_DIR}
_spawned: dict[int, subprocess.Popen[bytes]] = {}  # servers this process started (to reap them)


@dataclass
class SandboxInfo:
    dir: Path
    endpoint: str
    pid: int
    port: int
    started: str
    lost_instances: tuple[str, ...] = ()  # of the world an earlier server held (a new server starts empty)


def default_dir() -> Path:
    env = os.environ.get("RUNCTL_SANDBOX_DIR")
    return Path(env).expanduser() if env else Path.home() / ".runctl" / "sandbox"


def _resolve(dir: str | Path | None) -> Path:
    return Path(dir).expanduser().resolve() if dir is not None else default_dir().expanduser().resolve()


def _not_running(d: Path) -> SandboxNotRunning:
    return SandboxNotRunning(f"No sandbox is running for {d}.", [cmd("sandbox start", "Start it")])


# --- HTTP ---------------------------------------------------------------------------------------------

def _call(endpoint: str, name: str, body: dict[str, Any] | None = None, *, timeout: float = 10.0,
          d: Path | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{endpoint}/_runctl/{name}", data=data, method="POST" if body is not None
                                     else "GET", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (127.0.0.1 only)
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        except ValueError:
            detail = exc.reason
        raise BackendError(f"The sandbox refused {name}: {detail}",
                           [Step("Check the values you passed"), cmd("sandbox status", "Check the sandbox")]) from exc
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        raise _not_running(d or Path("?")) from exc


def _health(endpoint: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{endpoint}/_runctl/health", timeout=timeout) as response:  # noqa: S310
            payload = json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) and payload.get("ok") else None


# --- processes ---------------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    proc = _spawned.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            _spawned.pop(pid, None)
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def _start_lock(d: Path) -> Iterator[None]:
    d.mkdir(parents=True, exist_ok=True)
    with (d / LOCK_FILE).open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_state(d: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((d / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "pid" in state and "endpoint" in state else None


def _info(d: Path, state: dict[str, Any]) -> SandboxInfo:
    return SandboxInfo(dir=d, endpoint=str(state["endpoint"]), pid=int(state["pid"]), port=int(state["port"]),
                       started=str(state.get("started", "")))


# --- lifecycle ---------------------------------------------------------------------------------------

def status(dir: str | Path | None = None) -> SandboxInfo | None:
    """The running sandbox of ``dir`` (a live pid answering health with that pid), or None."""
    d = _resolve(dir)
    state = _read_state(d)
    if state is None or not _pid_alive(int(state["pid"])):
        return None
    health = _health(str(state["endpoint"]))
    if health is None or int(health.get("pid", -1)) != int(state["pid"]):
        return None
    return _info(d, state)


def _wipe(d: Path) -> None:
    foreign = sorted(p.name for p in d.iterdir() if p.name not in _OWN_ENTRIES and not p.name.endswith(".tmp"))
    if foreign:
        raise BackendError(f"Refusing to wipe {d}: it holds files the sandbox did not create ({', '.join(foreign[:3])}).",
                           [Step("Point RUNCTL_SANDBOX_DIR at an empty or sandbox-only folder")])
    for entry in d.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _spawn(d: Path, timeout: float) -> SandboxInfo:
    log = (d / LOG_FILE).open("ab")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "runctl_jupyter.sandbox.server", "--dir", str(d)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                close_fds=True, cwd=str(d))
    finally:
        log.close()
    _spawned[proc.pid] = proc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        state = _read_state(d)
        if state is not None and int(state["pid"]) == proc.pid and _health(str(state["endpoint"])):
            return _info(d, state)
        time.sleep(0.03)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    tail = (d / LOG_FILE).read_text(errors="replace").strip().splitlines()[-1:] if (d / LOG_FILE).exists() else []
    raise BackendError(f"The sandbox server did not come up within {timeout:.0f} s"
                       + (f": {tail[0][:200]}" if tail else "."),
                       [Step(f"See its log: {d / LOG_FILE}"), cmd("sandbox start --fresh", "Start a clean sandbox")])


def start(dir: str | Path | None = None, fresh: bool = False, timeout: float = 30) -> SandboxInfo:
    """Attach to the sandbox server of ``dir``, or spawn it; ``fresh`` stops it and wipes the folder first."""
    d = _resolve(dir)
    with _start_lock(d):
        if fresh:
            _stop(d)
            _wipe(d)
        else:
            info = status(d)
            if info is not None:
                return info
            stale = _read_state(d)
            if stale is not None and _pid_alive(int(stale["pid"])):
                # A pid that no longer answers health: an older server hanging, or a reused pid.
                _terminate_pid(int(stale["pid"]), d)
            (d / STATE_FILE).unlink(missing_ok=True)
        info = _spawn(d, timeout)  # (the new server ends the old world's leftover processes first)
        return dataclasses.replace(info, lost_instances=_clear_lost_world(d))


def _clear_lost_world(d: Path) -> tuple[str, ...]:
    """A new server starts with an empty world (moto keeps it in memory): the instance folders, command
    outputs and snapshot copies of the last one belong to nothing now. Removed; their instance IDs returned."""
    lost = tuple(sorted(p.name for p in (d / "instances").glob("i-*") if p.is_dir()))
    for leftover in [*(d / "instances" / iid for iid in lost), d / "ssm", d / "snapshots", d / "gpus"]:
        shutil.rmtree(leftover, ignore_errors=True)
    return lost


def _terminate_pid(pid: int, d: Path) -> None:
    cmdline = b""
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    if b"runctl_jupyter.sandbox.server" not in cmdline or str(d).encode() not in cmdline:
        return  # not our server (pid reused): leave it alone
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, 5.0):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 2.0)


def _stop(d: Path, timeout: float = 15.0) -> bool:
    state = _read_state(d)
    if state is None:
        return False
    pid = int(state["pid"])
    stopped = False
    if _pid_alive(pid):
        try:
            _call(str(state["endpoint"]), "shutdown", {}, timeout=5.0, d=d)
        except SandboxNotRunning:
            _terminate_pid(pid, d)
        if not _wait_gone(pid, timeout):
            _terminate_pid(pid, d)
        stopped = True
    (d / STATE_FILE).unlink(missing_ok=True)
    return stopped


def stop(dir: str | Path | None = None) -> bool:
    """End the sandbox server of ``dir`` and every instance process it started. False if none ran."""
    d = _resolve(dir)
    with _start_lock(d):
        return _stop(d)


# --- environment ---------------------------------------------------------------------------------------

def env_for(info: SandboxInfo) -> dict[str, str]:
    """Environment for boto3 (and the user's own code) to talk to this sandbox.

    ``AWS_SESSION_TOKEN`` and ``AWS_PROFILE`` are absent: callers should drop them from their env.
    """
    return {
        "AWS_ENDPOINT_URL": info.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "RUNCTL_SANDBOX_ENDPOINT": info.endpoint,
        "RUNCTL_SANDBOX_DIR": str(info.dir),
    }


attach_env = env_for  # the name docs/ARCHITECTURE.md uses
UNSET_ENV = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN")


# --- thin control calls -----------------------------------------------------------------------------------

def _ctl(info: SandboxInfo, name: str, body: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    return _call(info.endpoint, name, body, timeout=timeout, d=info.dir)


def clock(info: SandboxInfo) -> datetime:
    return datetime.fromisoformat(_ctl(info, "clock")["now"].replace("Z", "+00:00"))


def freeze_clock(info: SandboxInfo, at: datetime | str | None = None) -> datetime:
    value = at.isoformat() if isinstance(at, datetime) else at
    return datetime.fromisoformat(_ctl(info, "clock", {"freeze": value})["now"].replace("Z", "+00:00"))


def advance_clock(info: SandboxInfo, seconds: float) -> datetime:
    return datetime.fromisoformat(_ctl(info, "clock", {"advance_seconds": seconds})["now"].replace("Z", "+00:00"))


def unfreeze_clock(info: SandboxInfo, reset: bool = False) -> datetime:
    return datetime.fromisoformat(
        _ctl(info, "clock", {"unfreeze": True, "reset": reset})["now"].replace("Z", "+00:00"))


def age(info: SandboxInfo, iid: str, hours: float) -> dict[str, Any]:
    """Move the instance's LaunchTime back by ``hours`` (its current run looks that much longer)."""
    return dict(_ctl(info, "age", {"instance_id": iid, "hours": hours}))


def interrupt(info: SandboxInfo, iid: str, notice_seconds: float = 120,
              terminate_after_seconds: float | None = None) -> dict[str, Any]:
    """Post a spot interruption notice; the sandbox reclaims the instance after the window."""
    body: dict[str, Any] = {"instance_id": iid, "notice_seconds": notice_seconds}
    if terminate_after_seconds is not None:
        body["terminate_after_seconds"] = terminate_after_seconds
    return dict(_ctl(info, "interrupt", body))


def set_faults(info: SandboxInfo, **settings: Any) -> dict[str, Any]:
    """throttle=0.3, drop=0.0, latency_ms=100, seed=1, services=None|["ec2", …], reset=True."""
    return dict(_ctl(info, "faults", settings))


def faults(info: SandboxInfo) -> dict[str, Any]:
    return dict(_ctl(info, "faults"))


# SSM as it answers on AWS: about a second from SendCommand to a result (benchmarks' "aws" profile)
AWS_SSM_LATENCY = {"invocation_lag": 0.3, "ssm_delivery": 0.7}


def set_delays(info: SandboxInfo, **delays: float) -> dict[str, float]:
    """pending=, stopping=, ssm_online=, kill_grace=, invocation_lag=, ssm_delivery= (seconds of real
    time; ``**AWS_SSM_LATENCY`` for AWS's ~1 s round trips); none: read them."""
    return dict(_ctl(info, "delays", delays))


def set_gpus(info: SandboxInfo, iid: str, **values: Any) -> dict[str, Any]:
    """What a GPU instance's nvidia-smi reports: utilization=, memory_used_mib=, memory_utilization=,
    temperature=, power_watts= (one number for every GPU, or a list with one per GPU); none: read it."""
    return dict(_ctl(info, "gpus", {"instance_id": iid, **values}))


def snapshot(info: SandboxInfo) -> dict[str, Any]:
    return dict(_ctl(info, "snapshot", timeout=60.0))
