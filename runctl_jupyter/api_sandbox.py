"""The embedded sandbox, as the API: start, stop, status, and the knobs a demo turns (age, spot
interruption, clock). Part of the :mod:`runctl_jupyter.api` façade, which re-exports every name here.

Starting the sandbox is the one explicit step that exports its endpoint and test credentials into
this process's environment (``attach_environment``); contexts made afterwards by ``api.context`` talk
to it, contexts made before keep talking to the world they were made for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import Hint, UsageError, cmd
from .models import validate_instance_id

Echo = Callable[[str], None]


def _quiet(_line: str) -> None:
    """The default echo: say nothing."""


_SAVED_ENV: dict[str, str | None] = {}


@dataclass
class SandboxStatus:
    running: bool
    endpoint: str | None
    directory: str
    pid: int | None = None

    def __str__(self) -> str:
        if not self.running:
            return f"No sandbox is running for {self.directory}."
        return f"Sandbox running at {self.endpoint} (pid {self.pid}, folder {self.directory})."

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


def sandbox_start(directory: str | None = None, *, fresh: bool = False, freeze_clock: str | None = None,
                  echo: Echo = _quiet, in_kernel: bool = False) -> SandboxStatus:
    """Start or attach to the background sandbox and point this process's boto3 at it (the explicit
    step that exports the sandbox into this process's environment, for the user's own boto3 code
    too); ``in_kernel``: this process lives on (a notebook kernel), so later commands use it."""
    from .sandbox import control

    info = control.start(Path(directory) if directory else None, fresh=fresh)
    attach_environment(control.env_for(info))
    if info.lost_instances:
        shown = ", ".join(info.lost_instances[:3]) + (f" (+{len(info.lost_instances) - 3} more)"
                                                       if len(info.lost_instances) > 3 else "")
        echo(Hint(f"[sandbox] The previous sandbox world is gone (its server stopped or died): its "
                  f"{len(info.lost_instances)} instance(s) {shown} no longer exist, with their runs and disks; "
                  "their folders were removed. Create new ones: `{}`", "aws create t3.micro --wait"))
    if freeze_clock:
        control.freeze_clock(info, freeze_clock)
    if in_kernel:
        echo(f"[sandbox] AWS calls from this kernel now go to {info.endpoint} "
             f"(region us-east-1, no AWS account needed)")
    else:  # a shell command ends here: later commands reach the sandbox with --sandbox
        echo(f"[sandbox] Running at {info.endpoint} (region us-east-1, no AWS account needed); "
             f"use it with `runctl --sandbox …`, end it with `runctl sandbox stop`")
    return SandboxStatus(True, info.endpoint, str(info.dir), info.pid)


def attach_environment(env: Mapping[str, str]) -> None:
    """Set the sandbox's variables, remembering what they were so ``sandbox stop`` restores them."""
    for key, value in env.items():
        if key not in _SAVED_ENV:
            _SAVED_ENV[key] = os.environ.get(key)
        os.environ[key] = value
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN"):
        if key in os.environ and key not in env:
            _SAVED_ENV.setdefault(key, os.environ[key])
            del os.environ[key]


def restore_environment() -> None:
    for key, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _SAVED_ENV.clear()


def shown_path(path: str | Path) -> str:
    """A folder as a message shows it: relative to the current folder when it is near (a notebook's
    ``../build/sandbox``), else under ``~``, else absolute — so an executed guide keeps no path of the
    machine that ran it."""
    full = Path(path).expanduser().absolute()
    try:
        relative = Path(os.path.relpath(full))
    except ValueError:  # another drive (Windows)
        relative = full
    if not relative.is_absolute() and relative.parts.count("..") <= 1:
        return str(relative)
    home = Path.home()
    if full == home or home in full.parents:
        return str(Path("~") / full.relative_to(home))
    return str(full)


def sandbox_stop(directory: str | None = None, echo: Echo = _quiet) -> SandboxStatus:
    from .sandbox import control

    folder = Path(directory) if directory else control.default_dir()
    stopped = control.stop(folder)
    restore_environment()
    echo(f"[sandbox] {'Stopped the sandbox and every instance process' if stopped else 'No sandbox was running'}"
         f" ({shown_path(folder)}); AWS settings restored")
    return SandboxStatus(False, None, str(folder))


def sandbox_status(directory: str | None = None) -> SandboxStatus:
    from .sandbox import control

    folder = Path(directory) if directory else control.default_dir()
    info = control.status(folder)
    if info is None:
        return SandboxStatus(False, None, str(folder))
    return SandboxStatus(True, info.endpoint, str(info.dir), info.pid)


def attached_sandbox():
    """The SandboxInfo this process is attached to; a clear error when none runs."""
    from .errors import SandboxNotRunning
    from .sandbox import control

    folder = Path(os.environ.get("RUNCTL_SANDBOX_DIR") or control.default_dir())
    info = control.status(folder)
    if info is None:
        raise SandboxNotRunning(f"No sandbox is running for {folder}.", [cmd("sandbox start", "Start it")])
    return info


def attach_sandbox_for_shell() -> None:
    """``runctl --sandbox …``: use the already-running background sandbox."""
    from .sandbox import control

    attach_environment(control.env_for(attached_sandbox()))


def sandbox_age(instance_id: str, hours: float, echo: Echo = _quiet) -> None:
    from .sandbox import control

    validate_instance_id(instance_id)
    control.age(attached_sandbox(), instance_id, hours)
    echo(f"[sandbox] {instance_id} now looks {hours:g} h older (LaunchTime moved back)")


def sandbox_interrupt(instance_id: str, notice_seconds: int = 120, echo: Echo = _quiet) -> None:
    from .sandbox import control

    validate_instance_id(instance_id)
    control.interrupt(attached_sandbox(), instance_id, notice_seconds)
    echo(f"[sandbox] Spot interruption notice posted to {instance_id}; it is reclaimed in {notice_seconds} s")


def sandbox_gpus(instance_id: str, *, utilization: float | list[float] | None = None,
                 memory_used_mib: float | list[float] | None = None, echo: Echo = _quiet,
                 **more: float | list[float]) -> dict:
    """Set what a sandbox GPU instance's nvidia-smi reports (one value for every GPU, or a list with one
    per GPU; ``more``: memory_utilization, temperature, power_watts); no value: read it. Returns its GPUs."""
    from .sandbox import control

    validate_instance_id(instance_id)
    values = {k: v for k, v in {"utilization": utilization, "memory_used_mib": memory_used_mib, **more}.items()
              if v is not None}
    state = control.set_gpus(attached_sandbox(), instance_id, **values)
    if values:
        echo(f"[sandbox] {instance_id}'s GPUs now report " + ", ".join(f"{k}={v}" for k, v in values.items()))
    return state


MAX_CLOCK_ADVANCE_S = 100 * 365 * 86400


def sandbox_clock(freeze: str | None = None, advance: float | None = None, unfreeze: bool = False,
                  echo: Echo = _quiet):
    """Show, freeze, move or release the sandbox clock; returns its current instant."""
    from .sandbox import control

    if advance and not 0 < advance <= MAX_CLOCK_ADVANCE_S:
        raise UsageError(f"The sandbox clock moves forward by up to {MAX_CLOCK_ADVANCE_S // 86400 // 365} years "
                         f"at a time, not {advance:,.0f} s.",
                         [cmd("sandbox clock --advance 400d", "Move it by a duration like 90m, 2h or 400d"),
                          cmd("sandbox clock --freeze 2027-01-01T00:00:00Z", "Or freeze it at an instant")])
    info = attached_sandbox()
    if freeze:
        control.freeze_clock(info, freeze)
    if advance:
        control.advance_clock(info, advance)
    if unfreeze:
        control.unfreeze_clock(info)
    now = control.clock(info)
    echo(f"[sandbox] clock: {now.isoformat(timespec='seconds')}")
    return now


__all__ = [
    "MAX_CLOCK_ADVANCE_S", "SandboxStatus", "attach_environment", "attach_sandbox_for_shell", "attached_sandbox",
    "restore_environment", "sandbox_age", "sandbox_clock", "sandbox_gpus", "sandbox_interrupt", "sandbox_start",
    "sandbox_status",
    "sandbox_stop",
]
