"""The plain Python API: the façade every front end (magics, shell, panels) calls, and the one a user's
own Python code calls. ``__all__`` lists it; it gathers this module (contexts, instances, settings),
:mod:`.api_runs` (training runs, listings, costs, storage) and :mod:`.api_sandbox` (the sandbox).

Every function takes a :class:`Context` first (see :func:`context`) and an ``echo`` callable for
progress lines, and returns dataclasses or DataFrames. Nothing here prints or displays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import config
from .aws import ec2, images
from .aws.instance_types import describe_type
from .aws.session import SANDBOX_ENV, Context, SandboxWorld
from .errors import BackendError, RunctlError, Step, UsageError, cmd
from .models import Instance, name_problem, validate_instance_id
from .tag_keys import GUARDIAN_TAG

Echo = Callable[[str], None]


def _quiet(_line: str) -> None:
    """The default echo: say nothing."""


def context(flags: Mapping[str, Any] | None = None, magic: Mapping[str, Any] | None = None) -> Context:
    """Resolve settings from every source and build a Context for one command (or a panel).

    Its world is decided here, once: the sandbox this process is attached to (``sandbox start`` in
    this kernel, or ``runctl --sandbox``), else AWS. The context keeps that world for its life."""
    return Context(config.resolve(flags=flags, magic=magic), sandbox=attached_world())


def attached_world() -> SandboxWorld | None:
    """The sandbox this process's environment is attached to (``attach_environment``), if any."""
    endpoint = os.environ.get(SANDBOX_ENV)
    if not endpoint:
        return None
    folder = os.environ.get("RUNCTL_SANDBOX_DIR")
    return SandboxWorld(endpoint, Path(folder) if folder else None)


def default_project(ctx: Context, start: Path | None = None) -> str:
    """The project a command without --project uses here (the one rule: ``sync.choose_project``)."""
    from .sync_scope import choose_project

    return choose_project(None, ctx.settings.project, None, (start or Path.cwd()).resolve())


# --- instances ---------------------------------------------------------------------------------

def create(ctx: Context, instance_type: str, *, wait: bool = False, project: str | None = None,
           echo: Echo = _quiet, from_snapshot: str | None = None, **options: Any) -> Instance:
    """Launch an instance tagged as runctl's. Its image is ``ami`` (an AMI ID or an SSM parameter
    name), else the ``default_image`` setting, else the type's own (:mod:`runctl_jupyter.aws.images`:
    the Deep Learning AMI with PyTorch for NVIDIA GPU types, Amazon Linux 2023 of the type's architecture
    otherwise); the Created line says which and why, and a warning comes before launch when a GPU type
    gets an image without the NVIDIA driver (or one runctl cannot tell about). ``from_snapshot``
    attaches a volume made from that EBS snapshot (checked first: its ID, region and state; see
    :mod:`runctl_jupyter.restore`); the project then defaults to the snapshot's."""
    saved = None
    if from_snapshot is not None:
        from . import restore

        saved = restore.check_snapshot(ctx, from_snapshot, instance_type)
    project = project or (saved.project if saved else None) or default_project(ctx)
    if name_problem(project):
        raise UsageError(f"{project!r} is not a project name: it {name_problem(project)}.",
                         [Step("Pick a name like my-project or exp_2 (it becomes a folder and an S3 prefix)")])
    world = ctx.world().label()
    choice = images.choose_image(ctx, instance_type, options.pop("ami", None), default_image=ctx.settings.default_image,
                                 default_source=ctx.settings.sources.get("default_image", "default"))
    for warning in choice.warnings:  # said before anything bills
        echo(f"[{world}] {warning}")
    inst = ec2.create(ctx, instance_type, project=project, from_snapshot=from_snapshot, image=choice, **options)
    echo(f"[{world}] Created {inst.instance_id} ({instance_type}, project {project}) — {inst.state}\n"
         f"  image {choice.image_id} ({choice.summary()})")
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
        if inst.ssm_online and describe_type(ctx, inst.instance_type).nvidia_gpus:
            from .training.gpu_status import observe_gpus  # one SSM call (status.sh), GPU types only

            try:
                observe_gpus(ctx, inst)
            except BackendError as exc:
                inst.gpu_note = f"GPU figures unavailable: {exc.message}"
        if inst.ssm_online and inst.tags.get(GUARDIAN_TAG):
            from . import guardian  # one SSM call, only for instances a guardian watches

            try:
                guardian.refresh(ctx, inst)  # updates inst.tags[GUARDIAN_TAG] and the tag
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


# --- config ------------------------------------------------------------------------------------

def config_show(ctx: Context) -> list[tuple[str, Any, str]]:
    """(name, effective value, where it comes from) for every setting (sandbox defaults included)."""
    return ctx.explain()


def config_set(name: str, value: str) -> tuple[Path, Path | None]:
    """Check a setting's value, then write it into the user file; returns the file, and where an
    unreadable old one was kept."""
    return config.set_user_value(name, value)


def config_unset(name: str) -> config.Unset:
    """Remove a setting from the user file (the next source down applies again); an unreadable file
    is kept aside and a fresh one started."""
    return config.unset_user_value(name)


# --- the rest of the façade ----------------------------------------------------------------------

from .api_fleet import *  # noqa: E402,F403  (re-exported: see __all__)
from .api_fleet import __all__ as _FLEET  # noqa: E402
from .api_runs import *  # noqa: E402,F403  (re-exported: see __all__)
from .api_runs import __all__ as _RUNS  # noqa: E402
from .api_sandbox import *  # noqa: E402,F403
from .api_sandbox import __all__ as _SANDBOX  # noqa: E402
from .logs import MAX_CHUNK_BYTES as MAX_LOG_CHUNK_BYTES  # noqa: E402  (one tail read)
from .logs import ProgressParser  # noqa: E402  (the panels' progress reading)

__all__ = [
    "MAX_LOG_CHUNK_BYTES", "Context", "Echo", "Instance", "ProgressParser", "SandboxWorld", "attached_world", "config_set",
    "config_show", "config_unset", "context", "create", "default_project", "start", "status", "stop", "terminate", "wait",
    *_RUNS, *_SANDBOX, *_FLEET,
]
