"""Where a fleet runs and who may talk to its nodes: one subnet (so one AZ), a security group that
lets members reach each other and nothing else in, and a cluster placement group for GPU families.

runctl creates the group(s) with the fleet and removes them with it. The security group's only
ingress rule names the group itself (``UserIdGroupPairs``): never a CIDR, never ``0.0.0.0/0``. Its
egress is EC2's default (all outbound), which the nodes need for SSM and the code bundle's S3 URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..aws.session import Context
from ..errors import BackendError, GuardRefused, Step, UsageError, cmd, translate_aws_errors
from ..tag_keys import CREATED_TAG, FLEET_TAG
from .members import resource_name

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Where:
    subnet_id: str
    vpc_id: str
    availability_zone: str


@dataclass
class Made:
    """What one ``fleet create`` made itself (and removes again when the launch fails)."""

    security_group: str | None = None
    placement_group: str | None = None


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def choose_subnet(ctx: Context, instance_type: str, subnet: str | None) -> Where:
    """``--subnet``, else the default VPC's subnet in the first AZ (by name) that offers the type."""
    client = ctx.client("ec2")
    with translate_aws_errors("look up the fleet's subnet"):
        if subnet:
            try:
                found = client.describe_subnets(SubnetIds=[subnet])["Subnets"]
            except Exception as exc:
                if _code(exc) not in ("InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"):
                    raise
                found = []
            if not found:
                raise UsageError(f"Subnet {subnet} was not found in {ctx.region}.",
                                 [Step("Check the ID and the region (--region)"),
                                  Step("Or leave --subnet out: runctl then uses the default VPC")])
        else:
            found = client.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
            if not found:
                raise UsageError(f"{ctx.region} has no default VPC, so runctl does not know where to put the fleet.",
                                 [Step("Pass --subnet SUBNET_ID (one subnet: every node in one AZ)")])
            offered = _offering_zones(client, instance_type)
            usable = [s for s in found if not offered or s["AvailabilityZone"] in offered]
            found = sorted(usable or found, key=lambda s: s["AvailabilityZone"])
    chosen = found[0]
    return Where(chosen["SubnetId"], chosen["VpcId"], chosen["AvailabilityZone"])


def _offering_zones(client: Any, instance_type: str) -> set[str]:
    """The AZs that offer the type (GPU types are not in every AZ); empty when EC2 will not say."""
    try:
        pages = client.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [instance_type]}])
        return {o["Location"] for page in pages for o in page.get("InstanceTypeOfferings", [])}
    except Exception:  # a hint only: without it, the first default subnet is used
        return set()


def _tags(name: str, now: str, kind: str) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": [{"Key": FLEET_TAG, "Value": name}, {"Key": CREATED_TAG, "Value": now},
                                            {"Key": "Name", "Value": resource_name(name)}]}]


def _group_by_name(ctx: Context, name: str, vpc_id: str) -> dict[str, Any] | None:
    with translate_aws_errors(f"look up security group {resource_name(name)}"):
        groups = ctx.client("ec2").describe_security_groups(Filters=[
            {"Name": "group-name", "Values": [resource_name(name)]}, {"Name": "vpc-id", "Values": [vpc_id]}])
    return (groups.get("SecurityGroups") or [None])[0]


def _members_only(group: dict[str, Any]) -> bool:
    """Every ingress rule names only this very group (no CIDR, no prefix list, no other group)."""
    for rule in group.get("IpPermissions") or []:
        if rule.get("IpRanges") or rule.get("Ipv6Ranges") or rule.get("PrefixListIds"):
            return False
        if any(pair.get("GroupId") != group["GroupId"] for pair in rule.get("UserIdGroupPairs") or []):
            return False
    return True


def ensure_security_group(ctx: Context, name: str, vpc_id: str, made: Made) -> str:
    """The fleet's security group: members reach each other on every port, nothing else gets in."""
    group_name = resource_name(name)
    existing = _group_by_name(ctx, name, vpc_id)
    if existing is not None:
        tags = {t["Key"]: t["Value"] for t in existing.get("Tags") or []}
        if tags.get(FLEET_TAG) != name:
            raise UsageError(f"A security group named {group_name} exists in {vpc_id} and is not runctl's.",
                             [Step("Pick another fleet name"), Step(f"Or delete or rename {existing['GroupId']}")])
        if not _members_only(existing):
            raise GuardRefused(f"Security group {existing['GroupId']} ({group_name}) lets in traffic from outside the "
                               "fleet; runctl will not put nodes in it.",
                               [Step(f"Remove its other inbound rules (keep only the one naming {existing['GroupId']})"),
                                Step("Or delete it: runctl creates a fresh one")])
        return str(existing["GroupId"])  # left by a fleet of this name whose removal did not finish
    client = ctx.client("ec2")
    now = ctx.now().replace(microsecond=0).isoformat()
    with translate_aws_errors(f"create security group {group_name}"):
        group_id = client.create_security_group(
            GroupName=group_name, VpcId=vpc_id, TagSpecifications=_tags(name, now, "security-group"),
            Description=f"runctl fleet {name}: traffic between its members only")["GroupId"]
        made.security_group = group_id
        client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
            "IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id,
                                                      "Description": f"members of runctl fleet {name}"}]}])
    return str(group_id)


def ensure_placement_group(ctx: Context, name: str, made: Made) -> str:
    """The fleet's cluster placement group (GPU families): its nodes on one low-latency network."""
    group_name = resource_name(name)
    client = ctx.client("ec2")
    with translate_aws_errors(f"create placement group {group_name}"):
        try:
            found = client.describe_placement_groups(GroupNames=[group_name])["PlacementGroups"]
        except Exception as exc:
            if _code(exc) != "InvalidPlacementGroup.Unknown":
                raise
            found = []
        if found:
            tags = {t["Key"]: t["Value"] for t in found[0].get("Tags") or []}
            if tags.get(FLEET_TAG) != name:
                raise UsageError(f"A placement group named {group_name} exists and is not runctl's.",
                                 [Step("Pick another fleet name")])
            return group_name
        now = ctx.now().replace(microsecond=0).isoformat()
        client.create_placement_group(GroupName=group_name, Strategy="cluster",
                                      TagSpecifications=_tags(name, now, "placement-group"))
    made.placement_group = group_name
    return group_name


def remove(ctx: Context, name: str, *, vpc_id: str | None = None, made: Made | None = None,
           echo: Echo | None = None) -> list[str]:
    """Delete the fleet's security group and placement group (those ``made`` names, else those tagged
    for the fleet); what was removed. Their instances must be terminated first (AWS refuses before)."""
    client = ctx.client("ec2")
    removed: list[str] = []
    with translate_aws_errors(f"remove the network of fleet {name}"):
        if made is not None:
            groups = [made.security_group] if made.security_group else []
            placement = [made.placement_group] if made.placement_group else []
        else:
            filters = [{"Name": f"tag:{FLEET_TAG}", "Values": [name]}]
            if vpc_id:
                filters.append({"Name": "vpc-id", "Values": [vpc_id]})
            groups = [g["GroupId"] for g in client.describe_security_groups(Filters=filters)["SecurityGroups"]]
            placement = [g["GroupName"] for g in client.describe_placement_groups(
                Filters=[{"Name": f"tag:{FLEET_TAG}", "Values": [name]}]).get("PlacementGroups", [])]
        for group_id in groups:
            _delete(client.delete_security_group, {"GroupId": group_id}, f"security group {group_id}", name)
            removed.append(f"security group {group_id}")
        for group_name in placement:
            _delete(client.delete_placement_group, {"GroupName": group_name}, f"placement group {group_name}", name)
            removed.append(f"placement group {group_name}")
    if removed and echo is not None:
        echo(f"Removed fleet {name}'s {' and '.join(removed)}")
    return removed


def _delete(call: Callable[..., Any], params: dict[str, str], what: str, name: str) -> None:
    try:
        call(**params)
    except Exception as exc:
        code = _code(exc)
        if code.endswith("NotFound") or code == "InvalidPlacementGroup.Unknown":
            return  # already gone
        if code in ("DependencyViolation", "InvalidPlacementGroup.InUse"):
            raise BackendError(f"Could not remove {what} of fleet {name}: an instance still uses it.",
                               [cmd(f"fleet status {name}", "See which nodes are still there"),
                                cmd(f"fleet terminate {name}", "Once they are terminated, run this again")]) from exc
        raise
