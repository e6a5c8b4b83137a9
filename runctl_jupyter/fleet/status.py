"""``fleet status`` (a DataFrame: one row per node) and what ``fleet monitor`` knows of a fleet's run
before reading its logs (one status command for every running node)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import guardian
from ..aws import ec2, ssm
from ..aws.session import Context
from ..costs.rows import training_text
from ..errors import Step, UsageError, cmd, translate_aws_errors
from ..remote.replies import StatusReply
from ..tag_keys import FLEET_TAG, RUN_ID_TAG
from ..training.runs import Launch, project_for_instance
from .commands import run_all
from .members import Fleet, node_index, resource_name
from .train import DEFAULT_MASTER_PORT, FleetLaunch

COLUMNS = ["node", "instance_id", "state", "ssm_online", "private_ip", "az", "instance_type", "lifecycle",
           "run_id", "training"]


def network_note(ctx: Context, fleet: Fleet) -> str:
    """Its security group (and whether it still lets in members only) and placement group, in words."""
    from .network import _members_only

    client = ctx.client("ec2")
    with translate_aws_errors(f"look up fleet {fleet.name}'s network"):
        groups = client.describe_security_groups(
            Filters=[{"Name": f"tag:{FLEET_TAG}", "Values": [fleet.name]}])["SecurityGroups"]
        placement = client.describe_placement_groups(
            Filters=[{"Name": f"tag:{FLEET_TAG}", "Values": [fleet.name]}]).get("PlacementGroups", [])
    parts = []
    for group in groups:
        rule = "members only" if _members_only(group) else "⚠️  also lets in traffic from outside the fleet"
        parts.append(f"security group {group['GroupId']} ({rule})")
    parts += [f"placement group {g['GroupName']} ({g.get('Strategy', '?')})" for g in placement]
    return ", ".join(parts) or f"no {resource_name(fleet.name)} security group found"


def status_frame(ctx: Context, fleet: Fleet) -> Any:
    """One row per node, node 0 first; the caption says the fleet's shape, network and world."""
    import pandas as pd

    running = [inst.instance_id for inst in fleet.nodes if inst.state == "running"]
    online = ec2.ssm_online(ctx, running) if running else set()
    rows = [{"node": node_index(inst), "instance_id": inst.instance_id, "state": inst.state,
             "ssm_online": inst.instance_id in online, "private_ip": inst.private_ip or "",
             "az": inst.availability_zone or "", "instance_type": inst.instance_type, "lifecycle": inst.lifecycle,
             "run_id": inst.tags.get(RUN_ID_TAG, ""), "training": training_text(inst.tags, inst.state) or ""}
            for inst in fleet.nodes]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs["runctl_kind"] = "fleet"
    df.attrs["runctl_caption"] = f"{fleet.summary()} · {network_note(ctx, fleet)}"
    return df


@dataclass
class FleetRunInfo:
    """A fleet run as ``fleet monitor`` shows it: the launch (for following) and each node's status."""

    launch: FleetLaunch
    statuses: list[StatusReply]       # status.sh's reply per node (state "none" for a node that is not running)
    states: list[str]                 # each node's instance state
    ends: dict[int, str] = field(default_factory=dict)  # what the nodes' guardians said in S3: node → why

    @property
    def running(self) -> bool:
        return any(st.state == "running" for st in self.statuses)

    def header(self) -> str:
        lines = [f"[{self.launch.world}] Fleet run {self.launch.run_id} on {self.launch.fleet} "
                 f"(project {self.launch.project})"]
        for i, (st, state) in enumerate(zip(self.statuses, self.states, strict=True)):
            iid = self.launch.launches[i].instance_id
            if state != "running":
                lines.append(f"  node {i} ({iid}): instance {state}")
                continue
            code = f" (exit code {st.exit_code})" if st.state == "exited" and st.exit_code is not None else ""
            lines.append(f"  node {i} ({iid}): {'lost' if st.lost else st.shown_state}{code}")
        if self.ends:
            said = ", ".join(f"node {node} ({why})" for node, why in sorted(self.ends.items()))
            lines.append(f"  ended by: {said}, as the guardians said (the other nodes' guardians stop their runs)")
        return "\n".join(lines)


def run_info(ctx: Context, fleet: Fleet, project: str | None = None, run_id: str | None = None) -> FleetRunInfo | None:
    """The fleet's newest run (node 0's ``runctl:run-id`` tag) or run ``run_id``; None when it has none."""
    node0 = fleet.nodes[0]
    project = project_for_instance(ctx, node0, project)
    run_id = run_id or node0.tags.get(RUN_ID_TAG)
    if not run_id:
        return None
    running = [inst.instance_id for inst in fleet.nodes if inst.state == "running"]
    replies = run_all(ctx, running, "status", [project, run_id], ssm.remote_root_env(ctx)) if running else {}
    statuses = [StatusReply.parse(replies[inst.instance_id].stdout) if inst.instance_id in replies else StatusReply()
                for inst in fleet.nodes]
    if all(st.state == "none" for st in statuses):
        raise UsageError(f"No run {run_id} of project {project} on fleet {fleet.name}.",
                         [Step("Pass --project NAME when the run belongs to another project"),
                          cmd(f"fleet status {fleet.name}", "See the fleet's nodes and their newest runs")])
    launches = [Launch(inst.instance_id, project, run_id, st.pid, st.log)
                for inst, st in zip(fleet.nodes, statuses, strict=True)]
    launch = FleetLaunch(fleet.name, project, run_id, launches, node0.private_ip or "", DEFAULT_MASTER_PORT,
                         world=fleet.world)
    return FleetRunInfo(launch, statuses, [inst.state for inst in fleet.nodes],
                        guardian.fleet_ends(ctx, project, run_id))
