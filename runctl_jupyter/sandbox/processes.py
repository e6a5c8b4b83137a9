"""An instance's processes: found by the marker in their environment, so setsid/nohup'd ones too.

Every process the sandbox starts for an instance carries ``RUNCTL_SANDBOX_INSTANCE=<iid>`` and
``RUNCTL_SANDBOX_DIR=<dir>``; children inherit them. (A process that wipes its environment, e.g.
``env -i``, escapes tracking — documented limitation.)
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

INSTANCE_VAR = "RUNCTL_SANDBOX_INSTANCE"
DIR_VAR = "RUNCTL_SANDBOX_DIR"


def _environ(pid: int) -> dict[bytes, bytes] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours
        return None
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key] = value
    return env


def _alive(pid: int) -> bool:
    """True unless gone or a zombie (a zombie's environ reads empty anyway)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def find(sandbox_dir: Path, iid: str | None = None) -> list[int]:
    """PIDs of live processes of instance ``iid`` (or of every instance) of this sandbox."""
    want_dir = str(sandbox_dir).encode()
    want_iid = iid.encode() if iid else None
    me = os.getpid()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        env = _environ(int(entry))
        if not env or env.get(DIR_VAR.encode()) != want_dir:
            continue
        marker = env.get(INSTANCE_VAR.encode())
        if marker is None or (want_iid is not None and marker != want_iid):
            continue
        if _alive(int(entry)):
            pids.append(int(entry))
    return pids


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue
        except PermissionError:
            continue


def kill_all(sandbox_dir: Path, iid: str | None, grace: float = 1.0) -> int:
    """SIGTERM every process of the instance(s), SIGKILL what is left after ``grace`` seconds.

    Rescans while killing, so processes forked meanwhile are caught too. Returns how many were signalled.
    """
    seen: set[int] = set()
    deadline = time.monotonic() + grace
    pids = find(sandbox_dir, iid)
    while pids and time.monotonic() < deadline:
        fresh = [p for p in pids if p not in seen]
        _signal_all(fresh, signal.SIGTERM)
        seen.update(fresh)
        time.sleep(0.05)
        pids = find(sandbox_dir, iid)
    for _ in range(20):
        if not pids:
            break
        _signal_all(pids, signal.SIGKILL)
        seen.update(pids)
        time.sleep(0.05)
        pids = find(sandbox_dir, iid)
    return len(seen)
