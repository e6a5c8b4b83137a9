"""``fleet create``: N instances in one RunInstances (MinCount = MaxCount = N: every node or none), in
one subnet, in the fleet's security group and (GPU families) its cluster placement group, tagged
``runctl:fleet=NAME`` and ``runctl:fleet-node=i``. A create that fails leaves nothing behind: the
groups it made are removed, the nodes it launched terminated, and the error says so."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..aws import ec2
from ..aws.session import Context
from ..errors import BackendError, GuardRefused, RunctlError, Step, UsageError, cmd
from ..models import Instance
from ..tag_keys import FLEET_NODE_TAG, FLEET_TAG
from . import network
from .members import (
    Echo,
    Fleet,
    _quiet,
    check_name,
    check_nodes,
    live_members,
    resource_name,
    wants_cluster_placement,
)

MAX_WAIT_WORKERS = 16


def _again(exc: RunctlError, message: str, steps: Sequence[Step] | None = None) -> RunctlError:
    """The same kind of error (usage, refusal, AWS), with a message that says what runctl undid."""
    kind = type(exc) if type(exc) in (UsageError, GuardRefused, BackendError) else BackendError
    return kind(message, list(exc.steps if steps is None else steps), details=exc.details)


def create_fleet(ctx: Context, name: str, instance_type: str, nodes: int, *, project: str, spot: bool = False,
                 subnet: str | None = None, security_groups: Sequence[str] = (), wait: bool = False,
                 echo: Echo = _quiet, **options: Any) -> Fleet:
    """Launch the fleet's nodes (``options``: what ``aws create`` takes: ami, iam_instance_profile,
    disk_gb, key_name, max_price…); with ``wait``, until every node is running with SSM Online."""
    check_name(name)
    check_nodes(nodes)
    existing = live_members(ctx, name)
    if existing:
        raise UsageError(f"Fleet {name} already exists ({len(existing)} node(s): "
                         f"{', '.join(f'{i.instance_id} {i.state}' for i in existing)}).",
                         [cmd(f"fleet status {name}", "See it"), cmd(f"fleet terminate {name}", "Or end it first"),
                          Step("Or pick another name")])
    world = ctx.world().label()
    where = network.choose_subnet(ctx, instance_type, subnet)
    made = network.Made()
    try:
        group = network.ensure_security_group(ctx, name, where.vpc_id, made)
        placement = network.ensure_placement_group(ctx, name, made) if wants_cluster_placement(instance_type) else None
        launched = ec2.create_many(ctx, instance_type, nodes, project=project, subnet=where.subnet_id,
                                   security_groups=[group, *security_groups], spot=spot,
                                   placement={"GroupName": placement} if placement else None,
                                   extra_tags={FLEET_TAG: name}, name=resource_name(name), **options)
    except RunctlError as exc:
        undone = network.remove(ctx, name, made=made)
        raise _again(exc, f"{exc.message} Fleet {name} was not created: no node was launched (all {nodes} start "
                          f"together or none does){'; runctl removed its ' + ' and '.join(undone) if undone else ''}."
                     ) from exc
    try:
        for index, inst in enumerate(launched):
            tags = {FLEET_NODE_TAG: str(index), "Name": f"{resource_name(name)}-{index}"}
            ec2.set_tags(ctx, inst.instance_id, tags)
            inst.tags.update(tags)
    except RunctlError as exc:
        raise _again(exc, f"{exc.message} {_undo(ctx, name, launched, made)}") from exc
    ids = ", ".join(inst.instance_id for inst in launched)
    echo(f"[{world}] Created fleet {name}: {nodes} × {instance_type}{' (spot)' if spot else ''} in "
         f"{where.availability_zone} ({ids}; project {project}; security group {group}"
         f"{f', placement group {placement}' if placement else ''})")
    fleet = Fleet(name, launched, world, group, placement)
    if wait:
        wait_ready(ctx, fleet, echo, undo_made=made)
        fleet.nodes = live_members(ctx, name)
    return fleet


def wait_ready(ctx: Context, fleet: Fleet, echo: Echo, *, undo_made: network.Made | None = None) -> None:
    """Wait until every node is running with SSM Online (concurrently). ``undo_made``: this command
    launched them, so a node that never gets there ends the whole fleet (nothing is left to bill)."""
    echo(f"[{fleet.world}] Waiting for the {len(fleet.nodes)} nodes of fleet {fleet.name} to be running with "
         f"their SSM agents Online (up to {ec2.wait_limits(ctx)[1]} s)…")
    with ThreadPoolExecutor(max_workers=min(MAX_WAIT_WORKERS, len(fleet.nodes))) as pool:
        futures = [pool.submit(ec2.wait_for, ctx, inst.instance_id, "ssm") for inst in fleet.nodes]
        errors = [(i, f.exception()) for i, f in enumerate(futures)]
    failed = [(i, exc) for i, exc in errors if exc is not None]
    if not failed:
        echo(f"[{fleet.world}] Fleet {fleet.name}: all {len(fleet.nodes)} nodes are running and ready for commands")
        return
    index, first = failed[0]
    if not isinstance(first, RunctlError):
        raise first
    said = f"Node {index} of fleet {fleet.name}: {first.message}"
    if undo_made is None:
        raise _again(first, said)
    steps = [st for st in first.steps if not (st.command or "").startswith("aws wait")]
    steps.append(cmd(f"fleet create {fleet.name} {fleet.nodes[0].instance_type} --nodes {len(fleet.nodes)} --wait",
                     "Then create it again"))
    raise _again(first, f"{said} {_undo(ctx, fleet.name, fleet.nodes, undo_made)}", steps) from first


def _undo(ctx: Context, name: str, launched: list[Instance], made: network.Made) -> str:
    """Terminate what this create launched, then remove the groups it made (AWS refuses to delete a
    security group before its instances are terminated); says what became of them."""
    notes = [note for inst in launched if (note := ec2.cancel_created(ctx, inst))]
    try:
        with ThreadPoolExecutor(max_workers=min(MAX_WAIT_WORKERS, len(launched) or 1)) as pool:
            list(pool.map(lambda inst: ec2.wait_for(ctx, inst.instance_id, "terminated"), launched))
        removed = network.remove(ctx, name, made=made)
    except RunctlError as exc:
        removed = [f"(not its network yet: {exc.message})"]
    what = f"runctl has terminated its {len(launched)} node(s), which this create had just launched"
    if notes:
        what += f" ({'; '.join(notes)})"
    if removed:
        what += f", and removed its {' and '.join(removed)}"
    return what + "."
