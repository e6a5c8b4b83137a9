"""Fleets, as the API: part of the :mod:`runctl_jupyter.api` façade, which re-exports every name here.

A fleet is several instances that train one run together (multi-node, torch.distributed as the
engine): ``fleet_create`` → ``fleet_train`` → ``fleet_follow`` / ``fleet_run_info`` → ``fleet_stop`` /
``fleet_terminate``. Every safety rule of one instance holds for each node (``fleet_stop`` is
``api.stop`` on every node at once; ``fleet_terminate`` runs every node's checkpoint guard first and
terminates none while one has doubt). Nothing here prints or displays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import fleet as fleets
from .aws.session import Context
from .errors import BackendError, GuardRefused, RunctlError, Step, TrainingFailed, UsageError, cmd
from .fleet import Fleet, FleetLaunch, FleetResult, FleetRunInfo

Echo = Callable[[str], None]


def _quiet(_line: str) -> None:
    """The default echo: say nothing."""


def fleet_create(ctx: Context, name: str, instance_type: str, *, nodes: int, spot: bool = False, wait: bool = False,
                 project: str | None = None, subnet: str | None = None, security_groups: Sequence[str] = (),
                 echo: Echo = _quiet, **options: Any) -> Fleet:
    """Launch ``nodes`` instances as fleet ``name`` (one RunInstances: all of them or none), in one AZ,
    in a security group that lets members reach each other and nothing else in (and a cluster placement
    group for GPU families); ``options`` as :func:`api.create` takes them (ami, iam_instance_profile…)."""
    from .api import default_project
    from .models import name_problem

    project = project or default_project(ctx)
    if name_problem(project):
        raise UsageError(f"{project!r} is not a project name: it {name_problem(project)}.",
                         [Step("Pick a name like my-project or exp_2 (it becomes a folder and an S3 prefix)")])
    return fleets.create_fleet(ctx, name, instance_type, nodes, project=project, spot=spot, subnet=subnet,
                               security_groups=security_groups, wait=wait, echo=echo, **options)


def fleet_find(ctx: Context, name: str) -> Fleet:
    """The fleet's live nodes, node 0 first (a :class:`UsageError` when it has none)."""
    return fleets.find(ctx, name)


def fleet_status(ctx: Context, name: str):
    """One row per node (state, SSM, private address, newest run), as a DataFrame."""
    return fleets.status_frame(ctx, fleets.find(ctx, name))


def fleet_train(ctx: Context, name: str, script: str | Path, script_args: Sequence[str] = (), *,
                project: str | None = None, sync_code: bool = True, bucket: str | None = None,
                project_root: str | Path | None = None, torchrun: bool = False, nproc_per_node: str | None = None,
                master_port: int = fleets.DEFAULT_MASTER_PORT, autostop: float | None = None,
                max_hours: float | None = None, max_cost: float | None = None, echo: Echo = _quiet) -> FleetLaunch:
    """Start ``script`` on every node of the fleet with one run id (the code synced once; every node
    started or none) and return at once; follow it with :func:`fleet_follow`. Every node's guardian
    ends the run on its node when it fails on another, even with nobody following; ``autostop``
    (seconds) then stops each node's instance once its run has ended that long. ``max_hours`` and
    ``max_cost`` (the whole fleet's dollars: each node's guardian stops at its 1/N share) are budget
    caps, as for one instance."""
    from .training.launch import local_script

    local_script(script, project_root, sync_code)  # a missing script is said before any AWS call
    return fleets.start_fleet_training(ctx, fleets.find(ctx, name), script, script_args, project=project,
                                       sync_code=sync_code, bucket=bucket, project_root_dir=project_root,
                                       torchrun=torchrun, nproc_per_node=nproc_per_node, master_port=master_port,
                                       autostop=autostop, max_hours=max_hours, max_cost=max_cost, echo=echo)


def fleet_follow(ctx: Context, launch: FleetLaunch, on_text: Callable[[str], Any], *, all_nodes: bool = False,
                 should_stop: Callable[[], bool] | None = None, start_offsets: list[int] | None = None,
                 from_line_start: bool = False, echo: Echo = _quiet) -> FleetResult:
    """Hand node 0's log (``all_nodes``: every node's, lines prefixed ``[node i]``) to ``on_text`` until
    the run ended on every node; the first node to fail or stop ends the run on the others."""
    return fleets.follow_fleet(ctx, launch, on_text, all_nodes=all_nodes, should_stop=should_stop,
                               start_offsets=start_offsets, from_line_start=from_line_start, echo=echo)


def fleet_run_info(ctx: Context, name: str, project: str | None = None,
                   run_id: str | None = None) -> FleetRunInfo | None:
    """The fleet's newest run (or run ``run_id``) on every node; None when it has none."""
    return fleets.run_info(ctx, fleets.find(ctx, name), project, run_id)


def fleet_log(ctx: Context, info: FleetRunInfo, node: int, start: int | None = None, echo: Echo = _quiet) -> str:
    """Node ``node``'s log from byte ``start`` (default: its last chunk) as it was when ``info`` was read."""
    from .api_runs import RunInfo, run_log
    from .logs import MAX_CHUNK_BYTES

    run = RunInfo.of(info.launch.launches[node], info.statuses[node], info.launch.world)
    return run_log(ctx, run, max(0, run.log_size - MAX_CHUNK_BYTES) if start is None else start, echo)


def fleet_failure(result: FleetResult) -> TrainingFailed:
    """The error a fleet run that failed on a node raises (exit code 5), naming the node that failed first."""
    node = result.nodes[result.first_failure] if result.first_failure is not None else result.nodes[0]
    return TrainingFailed(
        f"Fleet run {result.run_id} on {result.fleet} failed: {node.said()} first{result.ended_text()}.",
        [cmd(f"aws monitor {node.instance_id} --run {result.run_id}", f"Read node {node.node}'s full log"),
         cmd(f"fleet monitor {result.fleet} --all-nodes", "See every node's last lines")],
        result=result, details=[f"Last lines of node {node.node}'s log:" if result.failed_tail else "Last lines of the log:",
                                *[f"  {line}" for line in (result.failed_tail or result.log_tail).splitlines()]])


def fleet_stop(ctx: Context, name: str, *, force: bool = False, wait: bool = False, echo: Echo = _quiet) -> Fleet:
    """``aws stop`` on every node at once: each training is asked to checkpoint (SIGTERM) at the same
    moment, its checkpoints uploaded, its instance stopped (a one-time spot node: terminated once its
    checkpoints are in S3). Nodes that refuse are named; the others are stopped."""
    from . import api

    fleet = fleets.find(ctx, name)
    failed = fleets.for_each_node(fleet, lambda i, inst: api.stop(ctx, inst.instance_id, force=force, wait=wait,
                                                                  echo=fleets.node_echo(echo, i)))
    if failed:
        raise _per_node_error(fleet, failed, "stopped")
    echo(f"[{fleet.world}] Fleet {name}: every node stopped{' (waited)' if wait else ''} — disks and checkpoints "
         "stay (EBS keeps billing); `fleet terminate` ends it")
    return fleets.find(ctx, name)


def fleet_terminate(ctx: Context, name: str, *, force: bool = False, snapshot: bool = False,
                    echo: Echo = _quiet) -> Fleet:
    """Terminate every node once each one's checkpoint guard passed (one node in doubt: none is
    terminated), then remove the fleet's security group and placement group."""
    return fleets.terminate_fleet(ctx, fleets.find(ctx, name), force=force, snapshot=snapshot, echo=echo)


def _per_node_error(fleet: Fleet, failed: list[tuple[int, BaseException]], done: str) -> BaseException:
    node, first = failed[0]
    if not isinstance(first, RunctlError):
        return first
    said = "; ".join(f"{fleet.label(i)}: {exc.message if isinstance(exc, RunctlError) else exc}" for i, exc in failed)
    details = [f"[node {i}] {line}" for i, exc in failed if isinstance(exc, RunctlError) for line in exc.details]
    kind = GuardRefused if any(isinstance(exc, GuardRefused) for _, exc in failed) else BackendError
    others = len(fleet.nodes) - len(failed)
    return kind(f"Fleet {fleet.name}: {len(failed)} node(s) were not {done} ({others} were): {said}",
                [*first.steps, cmd(f"fleet status {fleet.name}", "See every node")], details=details)


__all__ = [
    "Fleet", "FleetLaunch", "FleetResult", "FleetRunInfo", "fleet_create", "fleet_failure", "fleet_find",
    "fleet_follow", "fleet_log", "fleet_run_info", "fleet_status", "fleet_stop", "fleet_terminate", "fleet_train",
]
