"""A fleet as values: its name, its members (found by their ``runctl:fleet`` tag, ordered by node),
and the rules every fleet command shares (names, which families get a cluster placement group)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..aws import ec2
from ..aws.session import Context
from ..errors import GuardRefused, Step, UsageError, cmd
from ..grammar_fleet import FLEET_NAME
from ..models import Instance
from ..tag_keys import FLEET_NODE_TAG, FLEET_TAG, RUN_ID_TAG, RUN_STATE_TAG

Echo = Callable[[str], None]
# SSM's SendCommand takes at most 50 instance IDs, and one command reaches every node at once.
MAX_NODES = 50
# Families whose instances train over a fast network: they get a cluster placement group (one rack,
# low latency, high bandwidth). Others spread as EC2 places them, in the fleet's one AZ.
CLUSTER_FAMILY_PREFIXES = ("p", "g", "trn")


def _quiet(_line: str) -> None:
    """Say nothing."""


def check_name(name: str) -> str:
    """A fleet name becomes tags and the names of a security group and a placement group."""
    if not FLEET_NAME.fullmatch(name or ""):
        raise UsageError(f"{name!r} is not a fleet name: use 1-40 letters, digits, '-' or '_', starting with a "
                         "letter or digit.", [Step("Pick a name like ddp-1 or exp_2"),
                                             cmd("fleet create NAME INSTANCE_TYPE --nodes 2", "For example")])
    return name


def check_nodes(nodes: int) -> int:
    if not 1 <= nodes <= MAX_NODES:
        raise UsageError(f"A fleet has 1 to {MAX_NODES} nodes, not {nodes}.",
                         [Step(f"Pass --nodes between 1 and {MAX_NODES} (one SSM command reaches at most "
                               f"{MAX_NODES} instances)")])
    return nodes


def resource_name(name: str) -> str:
    """The name of the fleet's security group and placement group."""
    return f"runctl-fleet-{name}"


def wants_cluster_placement(instance_type: str) -> bool:
    """GPU (p*, g*) and Trainium (trn*) families train across nodes: one cluster placement group."""
    family = instance_type.split(".", 1)[0]
    return family.startswith(CLUSTER_FAMILY_PREFIXES)


def node_index(inst: Instance) -> int:
    try:
        return int(inst.tags.get(FLEET_NODE_TAG, ""))
    except ValueError:
        return MAX_NODES  # untagged (a create interrupted before tagging): after the tagged ones


@dataclass
class Fleet:
    """A fleet's live members, node 0 first (node 0 is the rendezvous: its private address is
    ``MASTER_ADDR``)."""

    name: str
    nodes: list[Instance]
    world: str = ""
    security_group: str | None = None
    placement_group: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def instance_ids(self) -> list[str]:
        return [inst.instance_id for inst in self.nodes]

    @property
    def numbers(self) -> list[int]:
        """Each live node's number (its runctl:fleet-node tag): 0..N-1 unless a node is gone."""
        return [node_index(inst) for inst in self.nodes]

    def node_of(self, instance_id: str) -> int:
        return self.instance_ids.index(instance_id)

    def label(self, node: int) -> str:
        """``node 2 (i-…)``, by the node's number."""
        numbers = self.numbers
        return f"node {node} ({self.nodes[numbers.index(node)].instance_id if node in numbers else '?'})"

    def summary(self) -> str:
        states = sorted({inst.state for inst in self.nodes})
        first = self.nodes[0] if self.nodes else None
        kind = f"{len(self.nodes)} × {first.instance_type}" if first else "no nodes"
        where = f" in {first.availability_zone}" if first and first.availability_zone else ""
        return f"Fleet {self.name}: {kind}{where}, {'/'.join(states) or 'none'}" + \
            (f" [{self.world}]" if self.world else "")

    def to_shell_text(self) -> str:
        return "\n".join([self.summary(), *(f"  node {i}  {inst.instance_id}  {inst.state}  {inst.private_ip or ''}"
                                            for i, inst in enumerate(self.nodes))])

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_shell_text())


def live_members(ctx: Context, name: str) -> list[Instance]:
    """The fleet's instances that are not terminated, node 0 first (one DescribeInstances)."""
    found = ec2.iter_instances(ctx, ctx.region, [
        {"Name": f"tag:{FLEET_TAG}", "Values": [name]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped", "shutting-down"]}])
    return sorted(found, key=lambda inst: (node_index(inst), inst.instance_id))


def find(ctx: Context, name: str) -> Fleet:
    """The fleet named ``name``, or a :class:`UsageError` with steps when it has no live member."""
    check_name(name)
    nodes = live_members(ctx, name)
    if not nodes:
        raise UsageError(f"No fleet named {name} in {ctx.region} (no live instance is tagged {FLEET_TAG}={name}).",
                         [cmd("resources list", "See runctl's instances and fleets"),
                          cmd(f"fleet create {name} INSTANCE_TYPE --nodes 2 --wait", "Or create it")])
    return Fleet(name, nodes, ctx.world().label())


def require_running(fleet: Fleet, action: str) -> None:
    """Refuse (nothing changed) unless every node is there and running: a fleet trains on all or none."""
    missing = sorted(set(range(max(fleet.numbers, default=-1) + 1)) - set(fleet.numbers))
    if missing or len(set(fleet.numbers)) != len(fleet.nodes):
        raise GuardRefused(f"Cannot {action}: fleet {fleet.name} has lost node(s) "
                           f"{', '.join(map(str, missing)) or '(untagged nodes)'} (terminated: a spot reclaim, the "
                           "console…), so its ranks would not be what the training expects.",
                           [cmd(f"fleet status {fleet.name}", "See the nodes left"),
                            cmd(f"fleet terminate {fleet.name}", "End the fleet"),
                            Step(f"Then create it again: `fleet create {fleet.name} INSTANCE_TYPE --nodes N --wait`")])
    idle = [(i, inst) for i, inst in enumerate(fleet.nodes) if inst.state != "running"]
    if not idle:
        return
    said = ", ".join(f"node {i} ({inst.instance_id}) is {inst.state}" for i, inst in idle)
    steps: list[Step] = []
    for i, inst in idle:
        if inst.state in ("stopped", "stopping"):
            steps.append(cmd(f"aws start {inst.instance_id} --wait", f"Start node {i}"))
        elif inst.state == "pending":
            steps.append(cmd(f"aws wait {inst.instance_id}", f"Wait for node {i}"))
    if any(inst.state in ("shutting-down", "terminated") for _, inst in idle):
        steps.append(cmd(f"fleet terminate {fleet.name}", "A node is gone: end the fleet"))
        steps.append(cmd(f"fleet create {fleet.name} INSTANCE_TYPE --nodes {len(fleet.nodes)} --wait",
                         "Then create it again"))
    steps.append(Step(f"Then {action} again"))
    raise GuardRefused(f"Cannot {action}: {said} (every node must be running).", steps)


def run_tags(inst: Instance) -> tuple[str | None, str | None]:
    """(run id, run state) from the tags runctl wrote when it started / ended the node's run."""
    return inst.tags.get(RUN_ID_TAG), inst.tags.get(RUN_STATE_TAG)
