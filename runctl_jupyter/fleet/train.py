"""``fleet train``: one run id on every node, the code synced once, every node started or none.

Round trips (every node holds this version of the scripts): one status command for all nodes (is a
node's claim taken? then nothing changes anywhere), one manifest read for all nodes, one PUT of one
code bundle that every node fetches with the same presigned GET, then one launch command per node,
sent concurrently (``training.start_training``: claim → apply the bundle → start). A node that
refuses or fails ends the run on the nodes that did start (their claims given back), and the error
says which node and why.

Each node's process gets the rendezvous in its environment (DESIGN.md): ``MASTER_ADDR`` (node 0's
private address), ``MASTER_PORT``, ``NODE_RANK``, ``NNODES``; without ``--torchrun`` also ``RANK`` =
``NODE_RANK``, ``WORLD_SIZE`` = ``NNODES``, ``LOCAL_RANK=0``. With ``--torchrun`` the script runs under
``python -m torch.distributed.run``, configured through its own ``PET_*`` variables (``PET_NNODES``,
``PET_NODE_RANK``, ``PET_MASTER_ADDR``, ``PET_MASTER_PORT``, ``PET_NPROC_PER_NODE``): torchrun then sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` for each worker itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import training
from ..aws import ssm
from ..aws.session import Context
from ..errors import BackendError, GuardRefused, RunctlError, Step, UsageError, cmd
from ..remote.replies import StatusReply, StopReply
from ..training.runs import Launch, new_run_id, project_name, tag_run
from .commands import run_all
from .members import Echo, Fleet, _quiet, require_running, wants_cluster_placement
from .sync_once import sync_once

DEFAULT_MASTER_PORT = 29500  # torchrun's own default
MAX_LAUNCH_WORKERS = 16


@dataclass
class FleetLaunch:
    """A run started on every node of a fleet (``launches`` in node order)."""

    fleet: str
    project: str
    run_id: str
    launches: list[Launch]
    master_addr: str
    master_port: int
    torchrun: bool = False
    synced: dict[str, str] = field(default_factory=dict)
    world: str = ""

    @property
    def instance_ids(self) -> list[str]:
        return [launch.instance_id for launch in self.launches]

    def summary(self) -> str:
        return (f"Fleet run {self.run_id} on {self.fleet}: started on {len(self.launches)} nodes "
                f"(rendezvous {self.master_addr}:{self.master_port}, project {self.project})")

    to_shell_text = summary

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary())


def told_once(said: list[list[str]]) -> list[str]:
    """Each node's lines, in node order, ``[node i]`` first; a line every node said (the guardian's
    plan, the URLs' expiry) is told once, as ``[every node]``, where node 0 said it."""
    common = set(said[0]).intersection(*said[1:]) if len(said) > 1 else set()
    lines = [f"[every node] {line}" if line in common else f"[node 0] {line}" for line in said[0]]
    for node, node_lines in enumerate(said[1:], start=1):
        lines += [f"[node {node}] {line}" for line in node_lines if line not in common]
    return lines


def rendezvous_env(fleet: Fleet, node: int, port: int, torchrun: bool, nproc_per_node: str | None) -> dict[str, str]:
    """What node ``node``'s process finds in its environment (see the module docstring)."""
    addr = fleet.nodes[0].private_ip or ""
    nnodes = str(len(fleet.nodes))
    env = {"MASTER_ADDR": addr, "MASTER_PORT": str(port), "NODE_RANK": str(node), "NNODES": nnodes}
    if not torchrun:
        env.update(RANK=str(node), WORLD_SIZE=nnodes, LOCAL_RANK="0")
        return env
    gpu = wants_cluster_placement(fleet.nodes[0].instance_type) and not fleet.nodes[0].instance_type.startswith("trn")
    env.update(RUNCTL_TORCHRUN=nproc_per_node or ("gpu" if gpu else "1"), PET_NNODES=nnodes,
               PET_NODE_RANK=str(node), PET_MASTER_ADDR=addr, PET_MASTER_PORT=str(port))
    return env


def start_fleet_training(ctx: Context, fleet: Fleet, script: str | Path, script_args: Sequence[str] = (), *,
                         project: str | None = None, sync_code: bool = True, bucket: str | None = None,
                         project_root_dir: str | Path | None = None, torchrun: bool = False,
                         nproc_per_node: str | None = None, master_port: int = DEFAULT_MASTER_PORT,
                         autostop: float | None = None, max_hours: float | None = None, max_cost: float | None = None,
                         echo: Echo = _quiet) -> FleetLaunch:
    """Start ``script`` on every node of ``fleet``: all of them, or none (see the module docstring)."""
    if nproc_per_node is not None and not torchrun:
        raise UsageError("--nproc-per-node needs --torchrun (without it, each node runs one process).",
                         [cmd(f"fleet train {fleet.name} {script} --torchrun --nproc-per-node {nproc_per_node}",
                              "Add --torchrun")])
    script_path, root, _rel = training.launch.local_script(script, project_root_dir, sync_code)
    require_running(fleet, "start training")
    if not fleet.nodes[0].private_ip:
        raise BackendError(f"Node 0 ({fleet.nodes[0].instance_id}) of fleet {fleet.name} has no private address "
                           "to rendezvous on.", [cmd(f"fleet status {fleet.name}", "Check its nodes")])
    name = project_name(ctx, script_path.resolve(), project, fleet.nodes[0].project)
    env = ssm.remote_root_env(ctx)
    _refuse_busy(ctx, fleet, name, env)
    bundle_env: dict[str, str] = {}
    synced: dict[str, str] = {}
    applied: dict[str, str] | None = None
    if sync_code:
        bundle_env, synced, applied = sync_once(ctx, fleet, root, name, env, bucket, echo)
    run_id = new_run_id(ctx)
    envs = [{**bundle_env, **rendezvous_env(fleet, i, master_port, torchrun, nproc_per_node)}
            for i in range(len(fleet.nodes))]

    said: list[list[str]] = [[] for _ in fleet.nodes]  # each node's lines, told in node order once all are back

    from .. import guardian

    # the fleet's cost cap, shared: every node runs as long, so each node's guardian stops at its 1/N share
    share = max_cost / len(fleet.nodes) if max_cost else None

    def launch(node: int) -> Launch:
        # every node's guardian watches the others: a failure anywhere ends the run everywhere, unattended
        return training.start_training(ctx, fleet.nodes[node].instance_id, script_path, script_args, project=name,
                                       sync_code=False, bucket=bucket, project_root_dir=root, run_id=run_id,
                                       extra_env=envs[node], echo=said[node].append,
                                       guardian_request=guardian.Request(autostop_s=autostop, max_hours=max_hours,
                                                                        max_cost=share, fleet_node=node,
                                                                        fleet_instances=tuple(fleet.instance_ids)))

    with ThreadPoolExecutor(max_workers=min(MAX_LAUNCH_WORKERS, len(fleet.nodes))) as pool:
        futures = [pool.submit(launch, i) for i in range(len(fleet.nodes))]
        outcomes = [(f.result() if f.exception() is None else f.exception()) for f in futures]
    for line in told_once(said):
        echo(line)
    failed = [(i, out) for i, out in enumerate(outcomes) if isinstance(out, BaseException)]
    started = [out for out in outcomes if isinstance(out, Launch)]
    if failed:
        raise _rolled_back(ctx, fleet, name, run_id, started, failed)
    for launch_ in started:
        guardian.after_launch(ctx, launch_.instance_id, run_id)
    if applied is not None:
        from ..training.launch import _manifest_cache

        cache = _manifest_cache(ctx)
        for iid in fleet.instance_ids:
            cache.put(iid, name, applied)
    result = FleetLaunch(fleet.name, name, run_id, started, fleet.nodes[0].private_ip or "", master_port, torchrun,
                         synced, fleet.world)
    cap = f"; budget cap ${max_cost:g} for the fleet, ${share:g} per node" if max_cost and share else ""
    echo(f"[{fleet.world}] Started run {run_id} on all {len(started)} nodes of fleet {fleet.name} "
         f"(rendezvous {result.master_addr}:{master_port}{', torchrun' if torchrun else ''}{cap})")
    return result


def _refuse_busy(ctx: Context, fleet: Fleet, project: str, env: dict[str, str]) -> None:
    """Round trip 1: a node whose claim is taken refuses the whole fleet run before anything changes."""
    replies = run_all(ctx, fleet.instance_ids, "status", [project], env)
    busy = []
    for node, iid in enumerate(fleet.instance_ids):
        result = replies[iid]
        if result.exit_code != 0:
            raise BackendError(f"Could not read the run status on node {node} ({iid}) of fleet {fleet.name}: "
                               f"{training.runs.first_line(result.stderr) or result.status}",
                               [cmd(f"fleet status {fleet.name}", "Check the fleet")])
        status = StatusReply.parse(result.stdout)
        if status.lock_state in ("running", "starting"):
            busy.append(f"node {node} ({iid}: run {status.lock_run_id or '?'}, PID {status.lock_pid or '?'})")
    if busy:
        raise GuardRefused(f"Training already running on {', '.join(busy)} of fleet {fleet.name}; nothing was started.",
                           [cmd(f"fleet monitor {fleet.name} --follow", "Wait for the current training to complete"),
                            cmd(f"fleet stop {fleet.name}", "Or stop the fleet (every node checkpoints first)")])


def end_runs(ctx: Context, instance_ids: Sequence[str], project: str, run_id: str, wait_s: int) -> dict[str, Any]:
    """End the run on these nodes as `stop` ends a training (SIGTERM to the training, ``wait_s`` to
    save, then its whole process group), with one command for all of them; their claims are given
    back and their run tagged stopped. The instances keep running. The stop.sh replies by node."""
    if not instance_ids:
        return {}
    replies = run_all(ctx, instance_ids, "stop", [project, str(wait_s)], ssm.remote_root_env(ctx))
    parsed = {}
    for iid, result in replies.items():
        parsed[iid] = reply = StopReply.parse(result.stdout)
        if reply.stopped and (reply.run_id or run_id) == run_id:
            tag_run(ctx, iid, run_id, "stopped")
    return parsed


def _rolled_back(ctx: Context, fleet: Fleet, project: str, run_id: str, started: list[Launch],
                 failed: list[tuple[int, BaseException]]) -> RunctlError:
    node, first = failed[0]
    ids = [launch.instance_id for launch in started]
    undone = ""
    if ids:
        which = ", ".join(f"node {fleet.node_of(i)}" for i in ids)
        try:
            end_runs(ctx, ids, project, run_id, 0)
            undone = f" runctl ended the run on {which}, which had started (every node starts or none does)."
        except RunctlError as exc:
            undone = (f" {which} had started, and runctl could not end the run there ({exc.message}): "
                      f"`fleet stop {fleet.name}` ends it.")
    others = f" ({len(failed) - 1} more node(s) failed too)" if len(failed) > 1 else ""
    reason = first.message if isinstance(first, RunctlError) else f"{type(first).__name__}: {first}"
    message = f"Fleet run {run_id} did not start on {fleet.label(node)}{others}: {reason}{undone}"
    steps = list(first.steps) if isinstance(first, RunctlError) else [Step("Run the command again")]
    steps.append(cmd(f"fleet status {fleet.name}", "See the fleet"))
    details = list(first.details) if isinstance(first, RunctlError) else []
    kind = type(first) if isinstance(first, UsageError | GuardRefused) else BackendError
    error = kind(message, steps, details=details)
    error.__cause__ = first
    return error
