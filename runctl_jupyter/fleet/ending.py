"""``fleet terminate``: the checkpoint guard of every node first (each as strict as ``aws terminate``),
then every node or none: one node with doubt refuses the whole fleet, and nothing is terminated.
Once the nodes are terminated, the fleet's security group and placement group are removed."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .. import guard
from ..aws import ec2
from ..aws.session import Context
from ..errors import GuardRefused, RunctlError, cmd
from ..models import Instance
from . import network
from .members import Echo, Fleet, _quiet

MAX_WORKERS = 16


def for_each_node(fleet: Fleet, work: Callable[[int, Instance], object]) -> list[tuple[int, BaseException]]:
    """Run ``work(node, instance)`` for every node concurrently (``node``: its number, the runctl:fleet-node
    tag); the nodes that raised, in node order."""
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(fleet.nodes) or 1)) as pool:
        futures = [pool.submit(work, n, inst) for n, inst in zip(fleet.numbers, fleet.nodes, strict=True)]
        return [(n, exc) for n, f in zip(fleet.numbers, futures, strict=True) if (exc := f.exception()) is not None]


def node_echo(echo: Echo, node: int) -> Echo:
    return lambda line: echo(f"[node {node}] {line}")


def terminate_fleet(ctx: Context, fleet: Fleet, *, force: bool = False, snapshot: bool = False, echo: Echo = _quiet) -> Fleet:
    """Terminate every node once each one's guard passed (or ``force`` / ``snapshot`` says how), wait
    until they are terminated, then remove the fleet's network."""
    world = ctx.world().label()
    alive = [inst for inst in fleet.nodes if inst.state != "terminated"]

    def check(node: int, inst: Instance) -> None:
        if inst.state not in ("terminated", "shutting-down"):
            guard.guard_terminate(ctx, inst, force=force, snapshot=snapshot, echo=node_echo(echo, node))

    refused = for_each_node(fleet, check)
    if refused:
        raise _refusal(fleet, refused)
    for inst in alive:
        if inst.state != "shutting-down":
            ec2.terminate(ctx, inst.instance_id)
    echo(f"[{world}] Terminating fleet {fleet.name}: {', '.join(i.instance_id for i in alive) or 'no live node'}")
    failed = for_each_node(fleet, lambda _node, inst: ec2.wait_for(ctx, inst.instance_id, "terminated"))
    if failed:
        raise failed[0][1]
    network.remove(ctx, fleet.name, echo=echo)
    echo(f"[{world}] Fleet {fleet.name} is terminated")
    return fleet


def _refusal(fleet: Fleet, refused: list[tuple[int, BaseException]]) -> BaseException:
    node, first = refused[0]
    if not isinstance(first, RunctlError):
        return first
    names = ", ".join(fleet.label(i) for i, _ in refused)
    details = []
    for i, exc in refused:
        details += [f"[node {i}] {line}" for line in (exc.details if isinstance(exc, RunctlError) else ())]
        details.append(f"[node {i}] {exc.message if isinstance(exc, RunctlError) else exc}")
    kind = GuardRefused if isinstance(first, GuardRefused) else type(first)
    return kind(f"Termination of fleet {fleet.name} blocked on {names}: no node was terminated (every node goes "
                "together, once no checkpoint can be lost).",
                [cmd(f"fleet stop {fleet.name}", "Stop instead (every node uploads its checkpoints to S3)"),
                 cmd(f"fleet terminate {fleet.name} --snapshot", "Or save the disks of the nodes in doubt as EBS "
                                                                "snapshots first, then terminate"),
                 cmd(f"fleet terminate {fleet.name} --force", "Or terminate anyway (checkpoints will be lost)")],
                details=details)
