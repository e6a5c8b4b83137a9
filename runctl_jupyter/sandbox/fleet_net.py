"""What a fleet needs of EC2's network that moto lacks, as strict as AWS:

- **placement groups** (moto 5.2 has none): CreatePlacementGroup, DescribePlacementGroups (names,
  ``tag:`` / ``strategy`` / ``group-name`` filters), DeletePlacementGroup; RunInstances into an unknown
  group is refused (``InvalidPlacementGroup.Unknown``) before anything is launched, deleting a group
  that still holds an instance is refused (``InvalidPlacementGroup.InUse``), and DescribeInstances
  shows each instance's group;
- **DeleteSecurityGroup** refused with ``DependencyViolation`` while an instance that is not yet
  terminated uses the group (moto deletes it);
- **private addresses nodes can reach**: every instance gets its own loopback address (127.x.y.z,
  all of 127.0.0.0/8 is this machine's on Linux) as its ``PrivateIpAddress``, so a process of one
  instance reaches a port another instance's process listens on at that instance's address, as
  members of one VPC do. Not enforced: a security group's rules (every local process can connect).
"""

from __future__ import annotations

import random
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from . import moto_seams
from .protocol import AwsRequest, ec2_error, ec2_xml
from .world import World

_ID = re.compile(r"<instanceId>(i-[0-9a-f]+)</instanceId>")
_LIVE = ("pending", "running", "stopping", "stopped", "shutting-down")


class FleetNetwork:
    def __init__(self, world: World, run_instances: Callable[[AwsRequest, dict[str, Any]], Any]) -> None:
        self.world = world
        self.run_instances_next = run_instances
        self.lock = threading.Lock()
        self.groups: dict[tuple[str, str], dict[str, Any]] = {}  # (region, name) → the placement group
        self.addresses: set[str] = set()
        self.random = random.Random()
        self.actions: dict[str, Callable[[AwsRequest, dict[str, Any]], Any]] = {
            "CreatePlacementGroup": self.create_placement_group,
            "DescribePlacementGroups": self.describe_placement_groups,
            "DeletePlacementGroup": self.delete_placement_group,
            "RunInstances": self.run_instances,
            "DeleteSecurityGroup": self.delete_security_group,
        }

    def handle(self, req: AwsRequest, environ: dict[str, Any]) -> Any:
        handler = self.actions.get(req.action or "")
        return handler(req, environ) if handler else None

    # --- placement groups --------------------------------------------------------------------------

    def _tags(self, req: AwsRequest, resource_type: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        spec = 1
        while f"TagSpecification.{spec}.ResourceType" in req.params:
            if req.params[f"TagSpecification.{spec}.ResourceType"] == resource_type:
                tag = 1
                while f"TagSpecification.{spec}.Tag.{tag}.Key" in req.params:
                    tags[req.params[f"TagSpecification.{spec}.Tag.{tag}.Key"]] = req.params.get(
                        f"TagSpecification.{spec}.Tag.{tag}.Value", "")
                    tag += 1
            spec += 1
        return tags

    @staticmethod
    def _xml(group: dict[str, Any]) -> str:
        tags = "".join(f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>" for k, v in group["tags"].items())
        return (f"<groupName>{escape(group['name'])}</groupName><strategy>{group['strategy']}</strategy>"
                f"<state>available</state><groupId>{group['id']}</groupId><groupArn>{group['arn']}</groupArn>"
                f"<tagSet>{tags}</tagSet>")

    def create_placement_group(self, req: AwsRequest, environ: dict[str, Any]) -> Any:
        name = req.params.get("GroupName", "")
        strategy = req.params.get("Strategy", "")
        if not name or strategy not in ("cluster", "spread", "partition"):
            return ec2_error("InvalidParameterValue", "A placement group needs a GroupName and a Strategy of "
                                                      "cluster, spread or partition.")
        with self.lock:
            if (req.region, name) in self.groups:
                return ec2_error("InvalidPlacementGroup.Duplicate", f"The Placement Group '{name}' already exists.")
            gid = f"pg-{uuid.uuid4().hex[:17]}"
            group = {"name": name, "strategy": strategy, "id": gid, "tags": self._tags(req, "placement-group"),
                     "arn": f"arn:aws:ec2:{req.region}:123456789012:placement-group/{name}"}
            self.groups[(req.region, name)] = group
        return ec2_xml("CreatePlacementGroup", f"<placementGroup>{self._xml(group)}</placementGroup>")

    def _filters(self, req: AwsRequest) -> list[tuple[str, list[str]]]:
        found, index = [], 1
        while f"Filter.{index}.Name" in req.params:
            found.append((req.params[f"Filter.{index}.Name"], req.param_list(f"Filter.{index}.Value")))
            index += 1
        return found

    def describe_placement_groups(self, req: AwsRequest, environ: dict[str, Any]) -> Any:
        names = req.param_list("GroupName")
        with self.lock:
            groups = [g for (region, _), g in sorted(self.groups.items()) if region == req.region]
        for name in names:
            if name not in {g["name"] for g in groups}:
                return ec2_error("InvalidPlacementGroup.Unknown", f"The Placement Group '{name}' is unknown.")
        if names:
            groups = [g for g in groups if g["name"] in names]
        for key, values in self._filters(req):
            if key.startswith("tag:"):
                groups = [g for g in groups if g["tags"].get(key[4:]) in values]
            elif key == "strategy":
                groups = [g for g in groups if g["strategy"] in values]
            elif key == "group-name":
                groups = [g for g in groups if g["name"] in values]
        items = "".join(f"<item>{self._xml(g)}</item>" for g in groups)
        return ec2_xml("DescribePlacementGroups", f"<placementGroupSet>{items}</placementGroupSet>")

    def delete_placement_group(self, req: AwsRequest, environ: dict[str, Any]) -> Any:
        name = req.params.get("GroupName", "")
        with self.world.moto_lock:
            in_use = [inst.id for inst in moto_seams.instances_in(req.region)
                      if moto_seams.placement_group(inst) == name and moto_seams.state(inst) != "terminated"]
        with self.lock:
            if (req.region, name) not in self.groups:
                return ec2_error("InvalidPlacementGroup.Unknown", f"The Placement Group '{name}' is unknown.")
            if in_use:
                return ec2_error("InvalidPlacementGroup.InUse",
                                 f"The placement group '{name}' is in use and may not be deleted.")
            del self.groups[(req.region, name)]
        return ec2_xml("DeletePlacementGroup", "<return>true</return>")

    # --- instances ------------------------------------------------------------------------------------

    def _loopback(self) -> str:
        while True:
            # three digits in every part: as wide as any other instance's (tables line up the same each run)
            address = "127." + ".".join(str(self.random.randint(100, 254)) for _ in range(3))
            if address not in self.addresses:
                self.addresses.add(address)
                return address

    def run_instances(self, req: AwsRequest, environ: dict[str, Any]) -> Any:
        group = req.params.get("Placement.GroupName", "")
        with self.lock:
            if group and (req.region, group) not in self.groups:
                return ec2_error("InvalidPlacementGroup.Unknown", f"The Placement Group '{group}' is unknown.")
        resp = self.run_instances_next(req, environ)
        if resp.status_code != 200:
            return resp
        text = resp.get_data(as_text=True)
        with self.world.moto_lock, self.lock:
            for iid in dict.fromkeys(_ID.findall(text)):
                inst = moto_seams.find_instance(iid, req.region)
                if inst is None:
                    continue
                if group:
                    moto_seams.set_placement_group(inst, group)
                address = self._loopback()
                old = moto_seams.set_private_ip(inst, address)
                if old:
                    text = text.replace(f">{old}<", f">{address}<").replace(f"ip-{old.replace('.', '-')}.",
                                                                            f"ip-{address.replace('.', '-')}.")
        if group:
            text = text.replace("<groupName></groupName>", f"<groupName>{escape(group)}</groupName>")
        resp.set_data(text)
        return resp

    def delete_security_group(self, req: AwsRequest, environ: dict[str, Any]) -> Any:
        group_id = req.params.get("GroupId", "")
        if not group_id:
            return None  # by name (EC2-Classic style): moto answers
        with self.world.moto_lock:
            users = [inst.id for inst in moto_seams.instances_in(req.region)
                     if moto_seams.state(inst) in _LIVE and group_id in moto_seams.security_group_ids(inst)]
        if users:
            return ec2_error("DependencyViolation", f"resource {group_id} has a dependent object")
        return None  # moto deletes it
