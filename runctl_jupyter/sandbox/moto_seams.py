"""Every place the sandbox touches moto's internals — nothing else imports moto.

Relied-on range: moto >=5.1,<5.3 (verified on 5.2.5). The seams used:
  moto.moto_server.werkzeug_app: DomainDispatcherApplication, create_backend_app, MotoRequestHandler
  moto.backends.get_backend(service)[account][region]  (BackendDict / AccountSpecificBackend)
  moto.core.DEFAULT_ACCOUNT_ID
  moto.ec2.models.instance_types: INSTANCE_TYPES{name: dict}, InstanceTypeBackend.instance_types, InstanceType
  moto.ec2.models.amis.Ami(backend, id, name=, description=, owner_id=, owner_alias=, public=, architecture=,
               root_device_name=, …); ec2 backend .amis{id: Ami}
  moto.ssm.models.Parameter(…); ssm backend ._parameters (ParameterDict: name → [Parameter versions])
  ec2 backend: all_instances(), get_instance(), stop_instances(), terminate_instances(),
               describe_availability_zones(), iam_instance_profile_associations
  ec2 Instance: id, _state (.name/.code), launch_time (naive UTC datetime), lifecycle,
                instance_type, region_name, placement.zone, placement.group_name, image_id, disable_api_stop,
                nics[0].private_ip_address / .private_ip_addresses, security_groups, nics[i].group_set,
                disable_api_termination, get_tags(), root_device_name,
                block_device_mapping{device: BlockDeviceType(volume_id)}
  ec2 backend: snapshots{id: Snapshot(start_time naive UTC, volume)}, volumes{id: Volume(snapshot_id,
               attachment: VolumeAttachment(instance, device) | None)}
  s3 backend ("global"): buckets{name: FakeBucket(keys: _VersionedKeyStore of FakeKey(name, value, size))}
  instance types: moto.ec2.models.instance_types.INSTANCE_TYPES[name]["GpuInfo"] (gpu_info)
  IAM enforcement: moto.settings.INITIAL_NO_AUTH_ACTION_COUNT, core.authorization.ActionAuthenticatorMixin
               .request_count, iam.access_control (create_access_key, CreateAccessKeyFailure, IAMPolicy,
               PermissionResult), iam.models.get_account_id_from, utilities.utils.get_partition
Callers must hold World.moto_lock around every function here except app()/request_handler().
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

SUPPORTED = ((5, 1), (5, 3))  # [low, high)
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64,
               "stopped": 80}


def check_version() -> str:
    from moto import __version__

    major, minor = (int(p) for p in __version__.split(".")[:2])
    if not SUPPORTED[0] <= (major, minor) < SUPPORTED[1]:
        print(f"runctl sandbox: moto {__version__} is outside the verified range >=5.1,<5.3",
              file=sys.stderr)
    return __version__


def app() -> Any:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from .catalog import instance_types

    apply_instance_types(instance_types())
    return DomainDispatcherApplication(create_backend_app)


def apply_instance_types(entries: dict[str, dict[str, Any]]) -> None:
    """Lay the package's DescribeInstanceTypes snapshot (sandbox/catalog.py) over moto's instance-type data:
    the fields it lists replace moto's, and a type moto lacks (p3, which AWS still offers) is added, so
    the sandbox neither refuses a `create` AWS accepts nor answers GPU facts other than the snapshot's."""
    import copy

    from moto.ec2.models import instance_types as moto_types

    listed = {t.name: t for t in moto_types.InstanceTypeBackend.instance_types}
    for name, fields in entries.items():
        entry = moto_types.INSTANCE_TYPES.get(name)
        if entry is None:
            entry = copy.deepcopy(moto_types.INSTANCE_TYPES["g4dn.xlarge"])
            entry.update({"InstanceType": name, "Hypervisor": "xen", "InstanceStorageSupported": False})
            for key in ("InstanceStorageInfo", "GpuInfo", "NeuronInfo", "InferenceAcceleratorInfo"):
                entry.pop(key, None)
            moto_types.INSTANCE_TYPES[name] = entry
        entry.update(copy.deepcopy(fields))
        if name in listed:  # moto's answers are copies made at import: update the copy too
            listed[name].update(copy.deepcopy(entry))
        else:
            moto_types.InstanceTypeBackend.instance_types.append(moto_types.InstanceType(name))


def gpu_info(instance_type: str) -> dict[str, Any] | None:
    """DescribeInstanceTypes' ``GpuInfo`` of a type (None: no GPU, or a type moto does not know)."""
    from moto.ec2.models import instance_types as moto_types

    entry = moto_types.INSTANCE_TYPES.get(instance_type) or {}
    info = entry.get("GpuInfo")
    return dict(info) if info else None


def request_handler() -> Any:
    """moto's werkzeug request handler (keeps S3 metadata headers with underscores)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    return MotoRequestHandler


def _account() -> str:
    from moto.core import DEFAULT_ACCOUNT_ID

    return DEFAULT_ACCOUNT_ID


def _backend(service: str, region: str) -> Any:
    from moto.backends import get_backend

    return get_backend(service)[_account()][region]  # type: ignore[call-overload]


def _loaded_regions(service: str) -> list[str]:
    from moto.backends import get_backend

    return list(get_backend(service)[_account()].keys())  # type: ignore[call-overload]


def preload(regions: list[str]) -> None:
    """Build the backends the first calls need (SSM's default parameters take a second or two)."""
    for region in regions:
        _backend("ec2", region)
    _backend("ssm", "us-east-1")
    _backend("s3", "global")


# --- EC2 instances ---------------------------------------------------------------------------------

def ec2(region: str) -> Any:
    return _backend("ec2", region)


def find_instance(iid: str, region: str | None = None) -> Any | None:
    regions = [region] if region else []
    regions += [r for r in _loaded_regions("ec2") if r != region]
    for name in regions:
        for inst in _backend("ec2", name).all_instances():
            if inst.id == iid:
                return inst
    return None


def instances_in(region: str) -> list[Any]:
    return list(_backend("ec2", region).all_instances())


def all_instances() -> list[Any]:
    return [inst for region in _loaded_regions("ec2") for inst in instances_in(region)]


def state(inst: Any) -> str:
    return str(inst._state.name)


def set_state(inst: Any, name: str) -> None:
    inst._state.name = name
    inst._state.code = STATE_CODES[name]


def launch_time(inst: Any) -> datetime:
    value = inst.launch_time
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def set_launch_time(inst: Any, moment: datetime) -> None:
    # moto keeps a naive UTC datetime and serializes it itself
    inst.launch_time = moment.astimezone(UTC).replace(tzinfo=None)


def region_of(inst: Any) -> str:
    return str(inst.region_name)


def describe(inst: Any) -> dict[str, Any]:
    """The facts the sandbox needs about an instance, as plain values."""
    tags = {t["key"]: t["value"] for t in inst.get_tags()}
    return {"id": inst.id, "region": region_of(inst), "state": state(inst), "type": inst.instance_type,
            "az": inst.placement.zone, "image_id": inst.image_id,
            "lifecycle": inst.lifecycle or "on-demand", "tags": tags,
            "launch_time": launch_time(inst)}


def stop_protected(inst: Any) -> bool:
    return bool(getattr(inst, "disable_api_stop", False))


def stop(inst: Any) -> None:
    _backend("ec2", region_of(inst)).stop_instances([inst.id])


def terminate(inst: Any) -> None:
    _backend("ec2", region_of(inst)).terminate_instances([inst.id])


def iam_role_name(inst: Any) -> str | None:
    assoc = _backend("ec2", region_of(inst)).iam_instance_profile_associations.get(inst.id)
    if assoc is None:
        return None
    profile = assoc.iam_instance_profile
    roles = getattr(profile, "roles", None) or []
    return roles[0].name if roles else profile.name


def set_private_ip(inst: Any, address: str) -> str | None:
    """Give the instance's primary network interface this private address; the one it had."""
    nic = inst.nics[0]
    old = nic.private_ip_address
    nic.private_ip_address = address
    nic.private_ip_addresses = [{"Primary": True, "PrivateIpAddress": address}]
    return str(old) if old else None


def placement_group(inst: Any) -> str:
    return str(inst.placement.group_name or "")


def set_placement_group(inst: Any, name: str) -> None:
    inst.placement.group_name = name  # moto keeps the field (DescribeInstances shows it) but never sets it


def security_group_ids(inst: Any) -> set[str]:
    ids = {group.id for group in getattr(inst, "security_groups", None) or []}
    for nic in inst.nics.values():
        ids |= {group.id for group in nic.group_set or []}
    return ids


def availability_zones(region: str) -> list[str]:
    return sorted(z.name for z in _backend("ec2", region).describe_availability_zones())


# --- EBS snapshots --------------------------------------------------------------------------------

def snapshot_source(snapshot_id: str, region: str) -> tuple[str | None, bool, str | None]:
    """Where a snapshot's volume was when it was taken: (instance ID, attached at that instance's
    root device, the snapshot the volume itself was made from)."""
    snap = _backend("ec2", region).snapshots.get(snapshot_id)
    if snap is None:
        return None, False, None
    volume = snap.volume
    attachment = getattr(volume, "attachment", None)
    if attachment is None:
        return None, False, volume.snapshot_id
    inst = attachment.instance
    return inst.id, attachment.device == inst.root_device_name, volume.snapshot_id


def set_snapshot_start_time(snapshot_id: str, region: str, moment: datetime) -> None:
    snap = _backend("ec2", region).snapshots.get(snapshot_id)
    if snap is not None:
        snap.start_time = moment.astimezone(UTC).replace(tzinfo=None)  # naive UTC, as moto keeps it


def restored_snapshots(inst: Any) -> list[tuple[str, str]]:
    """(device, snapshot ID) of each volume of ``inst`` made from a snapshot, the root device excepted."""
    backend = _backend("ec2", region_of(inst))
    found = []
    for device, bdt in list(inst.block_device_mapping.items()):
        volume = backend.volumes.get(bdt.volume_id)
        if volume is not None and volume.snapshot_id and device != inst.root_device_name:
            found.append((device, str(volume.snapshot_id)))
    return found


# --- S3 ---------------------------------------------------------------------------------------------

def bucket_region(name: str) -> str | None:
    """The region of an existing bucket, else ``None`` (the caller holds the moto lock)."""
    bucket = _backend("s3", "global").buckets.get(name)
    return None if bucket is None else str(bucket.region_name)


def s3_objects() -> dict[str, dict[str, dict[str, Any]]]:
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for name, bucket in sorted(_backend("s3", "global").buckets.items()):
        objects = {}
        for key_name in sorted(bucket.keys.keys()):
            key = bucket.keys.get(key_name)
            if key is None or not hasattr(key, "value"):  # delete markers
                continue
            data = key.value
            objects[key_name] = {"size": len(data), "md5": hashlib.md5(data).hexdigest()}
        result[name] = objects
    return result


# --- SSM ----------------------------------------------------------------------------------------------

def ssm_parameter(region: str, name: str) -> str | None:
    param = _backend("ssm", region).get_parameter(name)
    return None if param is None else str(param.value)


# --- public images (AWS's own AMIs and the SSM parameters that name them) --------------------------

def add_public_images(region: str, images: list[dict[str, Any]]) -> None:
    """Make each image (sandbox/catalog.public_images) exist in the region as AWS's public AMIs do —
    DescribeImages knows it (owner alias ``amazon``), RunInstances boots it — and its public SSM
    parameter answer its ID (data type aws:ec2:image). Idempotent."""
    from moto.backends import get_backend
    from moto.ec2.models.amis import Ami
    from moto.ssm.models import Parameter

    if not all(region in get_backend(s)[_account()].regions for s in ("ec2", "ssm")):
        return  # a region moto does not know: moto itself answers the call
    ec2_backend = _backend("ec2", region)
    parameters = _backend("ssm", region)._parameters
    for image in images:
        created = image["creation_date"].astimezone(UTC).replace(tzinfo=None)  # naive UTC, as moto keeps it
        if image["image_id"] not in ec2_backend.amis:
            ec2_backend.amis[image["image_id"]] = Ami(
                ec2_backend, image["image_id"], name=image["name"], description=image["description"],
                owner_id=image["owner_id"], owner_alias="amazon", public=True, virtualization_type="hvm",
                architecture=image["architecture"], creation_date=created, hypervisor="xen",
                root_device_type="ebs", root_device_name=image["root_device_name"], region_name=f"{region}a")
        if image["parameter"] not in parameters:
            parameters[image["parameter"]].append(Parameter(  # type: ignore[abstract]
                account_id=_account(), name=image["parameter"], value=image["image_id"], parameter_type="String",
                description=None, allowed_pattern=None, keyid=None, last_modified_date=created,
                version=1, data_type="aws:ec2:image"))


# --- IAM (enforced only once moto is told to: INITIAL_NO_AUTH_ACTION_COUNT, POST /moto-api/reset-auth) --

def iam_enforced() -> bool:
    """Whether moto now checks each signed call against the caller's IAM policies."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return bool(ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT)


def iam_allows(access_key_id: str, session_token: str | None, region: str, action: str, resource: str) -> bool:
    """Whether the policies of the key's user (or assumed role) allow ``action`` on ``resource``, by
    moto's own evaluator, as moto decides for a call signed in its Authorization header. No
    signature is checked here. False for a key moto does not know."""
    from moto.iam.access_control import CreateAccessKeyFailure, IAMPolicy, PermissionResult, create_access_key
    from moto.iam.models import get_account_id_from
    from moto.utilities.utils import get_partition

    headers = {"X-Amz-Security-Token": session_token} if session_token else {}
    try:
        key = create_access_key(account_id=get_account_id_from(access_key_id), partition=get_partition(region),
                                access_key_id=access_key_id, headers=headers)
    except CreateAccessKeyFailure:
        return False
    results = {IAMPolicy(policy).is_action_permitted(action, resource) for policy in key.collect_policies()}
    return PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results


@contextmanager
def iam_check_suspended() -> Iterator[None]:
    """moto answers the calls made inside without its IAM check (it cannot check a presigned request:
    it reads the Authorization header, which such a request lacks, and fails with an internal error)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    limit, count = settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count
    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = limit, count
