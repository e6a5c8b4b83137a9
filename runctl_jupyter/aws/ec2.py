"""EC2 lifecycle: verb-first functions taking the Context first, returning models.Instance."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from ..errors import BackendError, GuardRefused, Step, cmd, translate_aws_errors
from ..errors import UsageError as UsageError  # the type errors raised through here (callers catch it here)
from ..models import (
    FROM_SNAPSHOT_TAG,
    RESTORE_DEVICE_TAG,
    EbsSnapshot,
    Instance,
    validate_instance_id,
    validate_snapshot_id,
)
from ..tag_keys import (
    CREATED_TAG,
    DEVICE_TAG,
    DISK_GB_TAG,
    IMAGE_TAG,
    INSTANCE_TAG,
    LEDGER_SECONDS_TAG,
    LEDGER_USD_TAG,
    PROJECT_TAG,
    SPOT_FALLBACK_TAG,
    SPOT_TYPE_TAG,
)
from . import images
from .images import AL2023_ARM_PARAMETER as AL2023_ARM_PARAMETER  # the names callers knew here stay
from .images import AL2023_PARAMETER as AL2023_PARAMETER
from .images import AL2023_PARAMETERS as AL2023_PARAMETERS
from .images import ImageChoice
from .images import describe_image as describe_image
from .instance_types import describe_type, launch_architecture
from .session import Context

# The root volume's size unless the image needs more (`aws create --disk-gb`).
ROOT_GB = 30
MANAGED_TAG = CREATED_TAG
# Where `create --from-snapshot` attaches the saved disk: AWS's recommended names for EBS data volumes
# are /dev/sd[f-p] (a Nitro type shows it as an NVMe disk, a Xen type as /dev/xvdf).
RESTORE_DEVICE = "/dev/sdf"
SNAPSHOT_NOT_FOUND = {"InvalidSnapshot.NotFound", "InvalidSnapshotID.NotFound"}
SPOT_UNAVAILABLE = {"InsufficientInstanceCapacity", "SpotMaxPriceTooLow", "MaxSpotInstanceCountExceeded",
                    "InsufficientCapacity", "UnfulfillableCapacity"}


def wait_limits(ctx: Context) -> tuple[float, int]:
    """(seconds between polls, deadline in seconds) that fit the world: the sandbox's transitions
    take well under a second, so 30 s there means it is stuck (or gone); AWS's take tens of
    seconds, and a GPU image can need minutes to boot and register with SSM."""
    return ctx.pacing.waiter_delay, ctx.pacing.waiter_max_s


def instance_from_api(data: dict[str, Any], region: str) -> Instance:
    tags = {t["Key"]: t["Value"] for t in data.get("Tags", []) or []}
    root = None
    for bdm in data.get("BlockDeviceMappings", []) or []:
        if bdm.get("DeviceName") == data.get("RootDeviceName"):
            root = bdm.get("Ebs", {}).get("VolumeSize")
    profile = (data.get("IamInstanceProfile") or {}).get("Arn")
    return Instance(
        instance_id=data["InstanceId"],
        instance_type=data.get("InstanceType", "?"),
        state=data.get("State", {}).get("Name", "unknown"),
        region=region,
        availability_zone=(data.get("Placement") or {}).get("AvailabilityZone"),
        launch_time=data.get("LaunchTime"),
        lifecycle="spot" if data.get("InstanceLifecycle") == "spot" else "on-demand",
        spot_request_type=tags.get(SPOT_TYPE_TAG) or ("one-time" if data.get("InstanceLifecycle") == "spot" else None),
        tags=tags,
        image_id=data.get("ImageId"),
        root_volume_gb=root or _int_or_none(tags.get(DISK_GB_TAG)),
        public_ip=data.get("PublicIpAddress"),
        private_ip=data.get("PrivateIpAddress"),
        iam_instance_profile=profile,
        spot_request_id=data.get("SpotInstanceRequestId"),
    )


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def describe(ctx: Context, instance_id: str) -> Instance:
    validate_instance_id(instance_id)
    with translate_aws_errors(f"describe {instance_id}", instance_id):
        resp = ctx.client("ec2").describe_instances(InstanceIds=[instance_id])
    for reservation in resp.get("Reservations", []):
        for data in reservation.get("Instances", []):
            return instance_from_api(data, ctx.region)
    raise BackendError(f"Instance {instance_id} was not found in {ctx.region}.",
                       [cmd("resources list", "List the instances runctl can see"),
                        Step("Check the region: pass --region, or `config show`")])


def iter_instances(ctx: Context, region: str, filters: list[dict] | None = None) -> Iterator[Instance]:
    """Every instance of a region (paginated), terminated ones excluded unless filtered for."""
    paginator = ctx.client("ec2", region).get_paginator("describe_instances")
    with translate_aws_errors(f"list instances in {region}"):
        for page in paginator.paginate(Filters=filters or [], PaginationConfig={"PageSize": 1000}):
            for reservation in page.get("Reservations", []):
                for data in reservation.get("Instances", []):
                    yield instance_from_api(data, region)


class SnapshotNotFound(BackendError):
    """The snapshot is not in this region (snapshots are regional) or not this account's to use."""


def _snapshot_not_found(ctx: Context, snapshot_id: str) -> SnapshotNotFound:
    return SnapshotNotFound(
        f"Snapshot {snapshot_id} was not found in {ctx.region} (a snapshot belongs to one region).",
        [cmd("resources list --all-regions", "Find its region: runctl's snapshots are listed with theirs"),
         Step("Then pass that --region, or copy the snapshot here with `aws ec2 copy-snapshot`")])


def describe_snapshot(ctx: Context, snapshot_id: str) -> EbsSnapshot:
    """One snapshot of ``ctx.region``; :class:`SnapshotNotFound` when the region has none by that ID."""
    validate_snapshot_id(snapshot_id)
    with translate_aws_errors(f"look up snapshot {snapshot_id}"):
        try:
            data = ctx.client("ec2").describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in SNAPSHOT_NOT_FOUND:
                raise _snapshot_not_found(ctx, snapshot_id) from exc
            raise
    if not data:
        raise _snapshot_not_found(ctx, snapshot_id)
    snap = data[0]
    tags = {t["Key"]: t["Value"] for t in snap.get("Tags", []) or []}
    return EbsSnapshot(snapshot_id=snap["SnapshotId"], state=snap.get("State", "unknown"),
                       size_gb=int(snap.get("VolumeSize") or 0), region=ctx.region,
                       progress=str(snap.get("Progress") or ""), source_instance=tags.get(INSTANCE_TAG),
                       project=tags.get(PROJECT_TAG) or None, device=tags.get(DEVICE_TAG), tags=tags)


def supported_architectures(ctx: Context, instance_type: str) -> tuple[str, ...]:
    """The type's ``ProcessorInfo.SupportedArchitectures`` (DescribeInstanceTypes, asked once per
    type and region in this process); a type the region does not know is a :class:`UsageError`."""
    return describe_type(ctx, instance_type).architectures


def architecture(ctx: Context, instance_type: str) -> str:
    """``"x86_64"`` or ``"arm64"`` (Graviton): which Amazon Linux 2023 image the type boots."""
    return launch_architecture(describe_type(ctx, instance_type))


def default_ami(ctx: Context, instance_type: str) -> str:
    """The current Amazon Linux 2023 image of the type's architecture (GPU types get another: images.py)."""
    return images.al2023_image_id(ctx, architecture(ctx, instance_type))


def root_device(image: dict[str, Any]) -> tuple[str | None, int | None]:
    """(RootDeviceName, its snapshot's VolumeSize) of a DescribeImages entry (None where not said)."""
    name = image.get("RootDeviceName")
    for bdm in image.get("BlockDeviceMappings") or []:
        if name and (bdm.get("DeviceName") or "").removeprefix("/dev/") == name.removeprefix("/dev/"):
            size = (bdm.get("Ebs") or {}).get("VolumeSize")
            return name, int(size) if size else None
    return name, None


def launch_parameters(image: ImageChoice, disk_gb: int) -> tuple[str, list[dict[str, Any]], int]:
    """(image ID, root block device mapping, root size in GB) that fit the image: its own root device
    name (a mapping under another name adds a second, billed volume) at no less than its own size
    (AWS refuses a smaller one)."""
    device, image_gb = root_device(image.image)
    size = max(disk_gb, image_gb or 0)
    if device is None:  # the image names no root device: launch with its own mapping
        return image.image_id, [], size
    return image.image_id, [{"DeviceName": device,
                             "Ebs": {"VolumeSize": size, "VolumeType": "gp3", "DeleteOnTermination": True}}], size


def create(ctx: Context, instance_type: str, **options: Any) -> Instance:
    """Launch one instance (see :func:`create_many`)."""
    return create_many(ctx, instance_type, 1, **options)[0]


def create_many(
    ctx: Context,
    instance_type: str,
    count: int,
    *,
    project: str,
    ami: str | None = None,
    image: ImageChoice | None = None,
    name: str | None = None,
    iam_instance_profile: str | None = None,
    key_name: str | None = None,
    security_groups: Iterable[str] = (),
    subnet: str | None = None,
    disk_gb: int = ROOT_GB,
    spot: bool = False,
    max_price: float | None = None,
    fallback_on_demand: bool = False,
    from_snapshot: str | None = None,
    placement: dict[str, Any] | None = None,
    extra_tags: dict[str, str] | None = None,
) -> list[Instance]:
    """Launch ``count`` instances from ``image`` (else the one :func:`images.choose_image` picks, ``ami``
    if given) in one RunInstances (MinCount = MaxCount: all of them or none); ``from_snapshot`` attaches a
    volume made from that snapshot at :data:`RESTORE_DEVICE` (in the instance's own AZ; deleted with the
    instance, the snapshot stays). ``placement`` and ``extra_tags`` (a fleet's placement group and tag) go
    into the same request."""
    if from_snapshot is not None:
        validate_snapshot_id(from_snapshot)
    choice = image or images.choose_image(ctx, instance_type, ami)
    image_id, mappings, root_gb = launch_parameters(choice, disk_gb)
    now = ctx.now().replace(microsecond=0).isoformat()
    # The volumes carry who made them too (a volume outliving its instance stays attributable).
    volume_tags = [
        {"Key": "Name", "Value": name or f"runctl-{project}"},
        {"Key": PROJECT_TAG, "Value": project},
        {"Key": MANAGED_TAG, "Value": now},
    ]
    tags = [
        *volume_tags,
        {"Key": LEDGER_SECONDS_TAG, "Value": "0"},
        {"Key": LEDGER_USD_TAG, "Value": "0"},
        {"Key": DISK_GB_TAG, "Value": str(root_gb)},
        {"Key": IMAGE_TAG, "Value": choice.summary()[:256]},  # what `status` says of the image (AWS: 256 at most)
        *({"Key": k, "Value": v} for k, v in (extra_tags or {}).items()),
    ]
    params: dict[str, Any] = {
        "ImageId": image_id,
        "InstanceType": instance_type,
        "MinCount": count,
        "MaxCount": count,
        "ClientToken": uuid.uuid4().hex,  # a retried RunInstances never launches a second instance
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags},
                              {"ResourceType": "volume", "Tags": volume_tags}],
        "BlockDeviceMappings": mappings,
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},  # IMDSv2 only
    }
    if from_snapshot is not None:
        # No VolumeSize: the volume is the snapshot's size. DeleteOnTermination: the saved disk is
        # the snapshot, which outlives this instance; a volume left behind would bill unseen.
        params["BlockDeviceMappings"].append(
            {"DeviceName": RESTORE_DEVICE, "Ebs": {"SnapshotId": from_snapshot, "VolumeType": "gp3",
                                                   "DeleteOnTermination": True}})
        tags += [{"Key": FROM_SNAPSHOT_TAG, "Value": from_snapshot},
                 {"Key": RESTORE_DEVICE_TAG, "Value": RESTORE_DEVICE}]
    if not params["BlockDeviceMappings"]:
        del params["BlockDeviceMappings"]
    if iam_instance_profile:
        key = "Arn" if iam_instance_profile.startswith("arn:") else "Name"
        params["IamInstanceProfile"] = {key: iam_instance_profile}
    if key_name:
        params["KeyName"] = key_name
    if security_groups:
        params["SecurityGroupIds"] = list(security_groups)
    if subnet:
        params["SubnetId"] = subnet
    if placement:
        params["Placement"] = placement
    if spot:
        options: dict[str, Any] = {"SpotInstanceType": "one-time"}
        if max_price is not None:
            options["MaxPrice"] = f"{max_price:.4f}"
        params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": options}
        tags.append({"Key": SPOT_TYPE_TAG, "Value": "one-time"})
    with translate_aws_errors(f"launch a {instance_type} instance"):
        try:
            resp = ctx.client("ec2").run_instances(**params)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if not (spot and fallback_on_demand and code in SPOT_UNAVAILABLE):
                raise
            # Asked for: no spot capacity at this price → on-demand. RunInstances made no request to cancel.
            params.pop("InstanceMarketOptions")
            params["ClientToken"] = uuid.uuid4().hex
            tags[:] = [t for t in tags if t["Key"] != SPOT_TYPE_TAG]
            tags.append({"Key": SPOT_FALLBACK_TAG, "Value": code})
            resp = ctx.client("ec2").run_instances(**params)
    return [instance_from_api(data, ctx.region)
            for data in sorted(resp["Instances"], key=lambda d: d.get("AmiLaunchIndex", 0))]


def cancel_created(ctx: Context, inst: Instance) -> str:
    """Undo a create: terminate the instance first (what bills), then cancel its spot request, best
    effort (a user without ec2:CancelSpotInstanceRequests must not be left with a running instance).
    Returns what became of the request ("" when there was none)."""
    terminate(ctx, inst.instance_id)
    if not inst.spot_request_id:
        return ""
    try:
        ctx.client("ec2").cancel_spot_instance_requests(SpotInstanceRequestIds=[inst.spot_request_id])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        return (f"its spot request {inst.spot_request_id} could not be cancelled ({code}; a one-time request "
                "closes with its instance, a persistent one must be cancelled in the EC2 console → Spot Requests)")
    return f"its spot request {inst.spot_request_id} cancelled"


def start(ctx: Context, instance_id: str) -> str:
    """Start a stopped instance; returns the previous state."""
    with translate_aws_errors(f"start {instance_id}", instance_id):
        resp = ctx.client("ec2").start_instances(InstanceIds=[instance_id])
    return resp["StartingInstances"][0]["PreviousState"]["Name"]


def stop(ctx: Context, instance_id: str) -> str:
    with translate_aws_errors(f"stop {instance_id}", instance_id):
        resp = ctx.client("ec2").stop_instances(InstanceIds=[instance_id])
    return resp["StoppingInstances"][0]["PreviousState"]["Name"]


def terminate(ctx: Context, instance_id: str) -> str:
    with translate_aws_errors(f"terminate {instance_id}", instance_id):
        resp = ctx.client("ec2").terminate_instances(InstanceIds=[instance_id])
    return resp["TerminatingInstances"][0]["PreviousState"]["Name"]


def set_tags(ctx: Context, instance_id: str, tags: dict[str, str]) -> None:
    with translate_aws_errors(f"tag {instance_id}", instance_id):
        ctx.client("ec2").create_tags(Resources=[instance_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


_WAITED_STATE = {"running": "running", "ssm": "running with its SSM agent Online",
                 "stopped": "stopped", "terminated": "terminated"}


def wait_for(ctx: Context, instance_id: str, state: str, echo: Callable[[str], None] | None = None) -> None:
    """Wait (bounded by :func:`wait_limits`) until the instance is ``state`` (``ssm`` = running and
    its SSM agent Online), saying first what it waits for; past the deadline, an error with steps."""
    from botocore.exceptions import WaiterError

    delay, deadline = wait_limits(ctx)
    wanted = _WAITED_STATE[state]
    if echo is not None:
        echo(f"[{ctx.world().label()}] Waiting for {instance_id} to be {wanted} (up to {deadline} s)…")
    waiter_name = {"running": "instance_running", "ssm": "instance_running",
                   "stopped": "instance_stopped", "terminated": "instance_terminated"}[state]
    started = time.monotonic()
    with translate_aws_errors(f"wait for {instance_id} to be {wanted}", instance_id):
        try:
            ctx.client("ec2").get_waiter(waiter_name).wait(
                InstanceIds=[instance_id], WaiterConfig={"Delay": delay, "MaxAttempts": max(1, round(deadline / delay))})
        except WaiterError as exc:
            if (exc.last_response or {}).get("Error"):
                raise  # an AWS error while polling: translate_aws_errors words it
            raise _wait_failed(ctx, instance_id, wanted, deadline, _state_in(exc.last_response)) from exc
    if state == "ssm":
        wait_ssm_online(ctx, instance_id, timeout=max(1.0, deadline - (time.monotonic() - started)))


def _state_in(response: dict[str, Any] | None) -> str:
    for reservation in (response or {}).get("Reservations", []):
        for instance in reservation.get("Instances", []):
            return str(instance.get("State", {}).get("Name", "unknown"))
    return "unknown"


def _wait_failed(ctx: Context, instance_id: str, wanted: str, deadline: float, current: str) -> BackendError:
    steps = [cmd(f"aws status {instance_id}", "Check its state")]
    if current in ("stopped", "stopping", "terminated", "shutting-down") and "running" in wanted:
        what = f"{instance_id} will not be {wanted}: it is {current}."
    else:
        what = f"{instance_id} was not {wanted} within {int(deadline)} s (it is {current})."
        if ctx.is_sandbox:
            steps.append(cmd("sandbox status", "Check that the sandbox is still running (its instances change "
                                               "state within a second)"))
        else:
            steps.append(Step("Look at the instance's status checks and system log in the EC2 console"))
        steps.append(cmd(f"aws wait {instance_id}" if "running" in wanted else f"aws wait {instance_id} --state "
                         + wanted, "Then wait again"))
    return BackendError(what, steps)


def ssm_online(ctx: Context, instance_ids: list[str]) -> set[str]:
    with translate_aws_errors("ask SSM which instances are online"):
        resp = ctx.client("ssm").describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": instance_ids}])
    return {i["InstanceId"] for i in resp.get("InstanceInformationList", []) if i.get("PingStatus") == "Online"}


def wait_ssm_online(ctx: Context, instance_id: str, timeout: float | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    # boto3 has no waiter for SSM registration, so this one polls DescribeInstanceInformation.
    if timeout is None:
        timeout = wait_limits(ctx)[1]
    delay = ctx.pacing.state_poll
    deadline = time.monotonic() + timeout
    while instance_id not in ssm_online(ctx, [instance_id]):
        if time.monotonic() > deadline:
            raise BackendError(
                f"Instance {instance_id} is running but its SSM agent did not come Online within {int(timeout)} s.",
                [Step("Give it an instance profile with AmazonSSMManagedInstanceCore (README: 'Instance profile')"),
                 Step("Use an image with the SSM agent (Amazon Linux 2023 has it) and outbound HTTPS"),
                 cmd(f"aws wait {instance_id}", "Then wait again")],
            )
        sleep(delay)
        delay = min(delay * 1.5, 10.0)


def refuse_unless_state(instance: Instance, wanted: str, action: str) -> None:
    """Refuse with steps when the instance is not in the state ``action`` needs."""
    if instance.state == wanted:
        return
    iid = instance.instance_id
    if instance.state in ("stopped", "stopping"):
        steps = [cmd(f"aws start {iid} --wait", "Start it and wait until it is ready"),
                 Step(f"Then {action} again")]
    elif instance.state == "pending":
        steps = [cmd(f"aws wait {iid}", "Wait until it is running and SSM is Online"),
                 Step(f"Then {action} again")]
    elif instance.state in ("terminated", "shutting-down"):
        steps = [cmd("aws create INSTANCE_TYPE --wait", "Create a new instance"),
                 cmd("resources list", "Or pick another one")]
    else:
        steps = [cmd(f"aws status {iid}", "Check its state")]
    raise GuardRefused(f"Cannot {action}: instance {iid} is {instance.state} (it must be {wanted}).", steps)
