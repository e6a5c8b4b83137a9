"""The plain Python API. Front ends (magics, shell, panels) call only this module.

Every function takes a :class:`Context` first (see :func:`context`) and an ``echo`` callable for
progress lines, and returns dataclasses or DataFrames. Nothing here prints directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config
from .aws import ec2
from .aws.session import Context
from .errors import BackendError, Hint, RunctlError, Step, UsageError, cmd
from .models import Instance, name_problem, project_from_folder, validate_instance_id

Echo = Callable[[str], None]


def _quiet(_line: str) -> None:
    """The default echo: say nothing."""


def context(flags: Mapping[str, Any] | None = None, magic: Mapping[str, Any] | None = None) -> Context:
    """Resolve settings from every source and build a Context for one command (or a panel)."""
    return Context(config.resolve(flags=flags, magic=magic))


def default_project(ctx: Context, start: Path | None = None) -> str:
    """settings.project, else the name of the project folder (nearest .git/pyproject.toml), else cwd's."""
    if ctx.settings.project:
        return ctx.settings.project
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return project_from_folder(folder.name)
    return project_from_folder(here.name)


# --- instances ---------------------------------------------------------------------------------

def create(ctx: Context, instance_type: str, *, wait: bool = False, project: str | None = None,
           echo: Echo = _quiet, from_snapshot: str | None = None, **options: Any) -> Instance:
    """Launch an instance tagged as runctl's. ``from_snapshot`` attaches a volume made from that EBS
    snapshot (checked first: its ID, region and state; see :mod:`runctl_jupyter.restore`); the
    project then defaults to the snapshot's."""
    saved = None
    if from_snapshot is not None:
        from . import restore

        saved = restore.check_snapshot(ctx, from_snapshot, instance_type)
    project = project or (saved.project if saved else None) or default_project(ctx)
    if name_problem(project):
        raise UsageError(f"{project!r} is not a project name: it {name_problem(project)}.",
                         [Step("Pick a name like my-project or exp_2 (it becomes a folder and an S3 prefix)")])
    world = ctx.world().label()
    inst = ec2.create(ctx, instance_type, project=project, from_snapshot=from_snapshot, **options)
    echo(f"[{world}] Created {inst.instance_id} ({instance_type}, project {project}) — {inst.state}")
    if wait:
        try:
            ec2.wait_for(ctx, inst.instance_id, "ssm", echo)
        except RunctlError as exc:
            # Never leave behind what this command asked for and the user cannot use (it holds nothing).
            request = ec2.cancel_created(ctx, inst)
            steps = [st for st in exc.steps if not (st.command or "").startswith("aws wait")]
            again = f" --from-snapshot {from_snapshot}" if from_snapshot else ""
            steps.append(cmd(f"aws create {instance_type}{again} --wait", "Then create a new one"))
            raise type(exc)(f"{exc.message} runctl has terminated {inst.instance_id}, which this create had just "
                            f"launched{'; ' + request if request else ''}.", steps, details=exc.details) from exc
        inst = ec2.describe(ctx, inst.instance_id)
        inst.ssm_online = True
        echo(f"[{world}] {inst.instance_id} is running and ready for commands")
    if saved is not None:
        from . import restore

        restore.say_where(ctx, inst, saved, project, echo)
    return inst


def status(ctx: Context, instance_id: str) -> Instance:
    inst = ec2.describe(ctx, validate_instance_id(instance_id))
    inst.world = ctx.world().label()
    if inst.state == "running":
        inst.ssm_online = inst.instance_id in ec2.ssm_online(ctx, [inst.instance_id])
        if inst.ssm_online and inst.tags.get("runctl:guardian"):
            from . import guardian  # one SSM call, only for instances a guardian watches

            try:
                guardian.refresh(ctx, inst)  # updates inst.tags["runctl:guardian"] and the tag
            except BackendError:
                # It stopped between the two calls (a guardian may stop its own instance): the
                # status shows the guardian's last recorded tag instead.
                inst = ec2.describe(ctx, instance_id)
                inst.world = ctx.world().label()
    return inst


def start(ctx: Context, instance_id: str, *, wait: bool = False, echo: Echo = _quiet) -> Instance:
    validate_instance_id(instance_id)
    world = ctx.world().label()
    inst = ec2.describe(ctx, instance_id)
    if inst.state in ("running", "pending"):
        echo(f"[{world}] {instance_id} is already {inst.state}; nothing to start")
    elif inst.state in ("terminated", "shutting-down"):
        ec2.refuse_unless_state(inst, "stopped", "start it")
    else:
        if inst.state == "stopping":
            echo(f"[{world}] {instance_id} is still stopping; waiting for it to stop first…")
            ec2.wait_for(ctx, instance_id, "stopped")
        from .costs.rows import run_tags_as_of
        from .guard import EVIDENCE_TAG

        stale = run_tags_as_of(inst.tags, inst.state)  # what ran before the stop is gone now
        if inst.tags.get(EVIDENCE_TAG):
            stale[EVIDENCE_TAG] = ""  # once it runs again, what stop found on its disk is no evidence
        if stale:
            ec2.set_tags(ctx, instance_id, stale)
        ec2.start(ctx, instance_id)
        echo(f"[{world}] Starting {instance_id}")
    if wait:
        ec2.wait_for(ctx, instance_id, "ssm", echo)
        echo(f"[{world}] {instance_id} is running and ready for commands")
    return status(ctx, instance_id)


def stop(ctx: Context, instance_id: str, *, force: bool = False, wait: bool = False,
         echo: Echo = _quiet) -> Instance:
    validate_instance_id(instance_id)
    world = ctx.world().label()
    inst = ec2.describe(ctx, instance_id)
    if inst.state in ("stopped", "stopping"):
        echo(f"[{world}] {instance_id} is already {inst.state}; nothing to stop")
        return inst
    if inst.state in ("terminated", "shutting-down"):
        ec2.refuse_unless_state(inst, "running", "stop it")
    if inst.state == "pending":
        echo(f"[{world}] {instance_id} is still starting; waiting until it runs, then stopping it…")
        ec2.wait_for(ctx, instance_id, "running")
        inst = ec2.describe(ctx, instance_id)
    from . import training  # the training-aware part (checkpoint, upload) lives there

    listing = training.before_stop(ctx, inst, force=force, echo=echo)
    if inst.one_time_spot:
        return training.end_spot_instance(ctx, inst, wait=wait, echo=echo, listing=listing, force=force)
    ec2.stop(ctx, instance_id)
    training.record_stop(ctx, inst)
    echo(f"[{world}] Stopping {instance_id} (its disk and checkpoints stay; EBS keeps billing)")
    if wait:
        ec2.wait_for(ctx, instance_id, "stopped", echo)
        echo(f"[{world}] {instance_id} is stopped")
    return ec2.describe(ctx, instance_id)


def terminate(ctx: Context, instance_id: str, *, force: bool = False, wait: bool = False,
              snapshot: bool = False, echo: Echo = _quiet) -> Instance:
    """Terminate, unless a checkpoint could be lost (see :mod:`runctl_jupyter.guard`); ``snapshot``
    saves the instance's volumes as EBS snapshots first when there is doubt."""
    validate_instance_id(instance_id)
    world = ctx.world().label()
    inst = ec2.describe(ctx, instance_id)
    if inst.state == "terminated":
        echo(f"[{world}] {instance_id} is already terminated")
        return inst
    from . import guard

    guard.guard_terminate(ctx, inst, force=force, snapshot=snapshot, echo=echo)
    ec2.terminate(ctx, instance_id)
    echo(f"[{world}] Terminating {instance_id}")
    if wait:
        ec2.wait_for(ctx, instance_id, "terminated", echo)
        echo(f"[{world}] {instance_id} is terminated")
    return ec2.describe(ctx, instance_id)


def wait(ctx: Context, instance_id: str, state: str = "ssm", echo: Echo = _quiet) -> Instance:
    validate_instance_id(instance_id)
    inst = ec2.describe(ctx, instance_id)
    if state in ("running", "ssm") and inst.state in ("stopped", "stopping", "terminated", "shutting-down"):
        ec2.refuse_unless_state(inst, "running", f"wait for {instance_id} to run")
    ec2.wait_for(ctx, instance_id, state, echo)
    echo(f"[{ctx.world().label()}] {instance_id} is {'running and SSM Online' if state == 'ssm' else state}")
    return status(ctx, instance_id)


# --- the sandbox ----------------------------------------------------------------------------------

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
                  echo: Echo = _quiet) -> SandboxStatus:
    """Start or attach to the background sandbox and point this process's boto3 at it."""
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
    if _in_ipython():
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


def sandbox_stop(directory: str | None = None, echo: Echo = _quiet) -> SandboxStatus:
    from .sandbox import control

    folder = Path(directory) if directory else control.default_dir()
    stopped = control.stop(folder)
    restore_environment()
    echo(f"[sandbox] {'Stopped the sandbox and every instance process' if stopped else 'No sandbox was running'}"
         f" ({folder}); AWS settings restored")
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


# --- config ------------------------------------------------------------------------------------

def config_show(ctx: Context) -> list[tuple[str, Any, str]]:
    """(name, effective value, where it comes from) for every setting (sandbox defaults included)."""
    return ctx.explain()


def config_set(name: str, value: str) -> tuple[Path, Path | None]:
    """Write a setting into the user file; returns it, and where an unreadable old one was kept."""
    if name not in config.SETTING_NAMES:
        raise UsageError(f"Unknown setting '{name}'.",
                         [cmd("config show", "See the settings"), Step("Valid names: " + ", ".join(config.SETTING_NAMES))])
    return config.set_user_value(name, value)


def _in_ipython() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None
