"""One row per instance for `%runctl resources` (pure): CostRow, built from describe_instances data.

Snapshot rows (``kind="snapshot"``) come from :mod:`.ebs_snapshots`.

Tags read (written by runctl when it starts/stops a run, so listing needs no SSM call):
``Name``, ``runctl:project``, ``runctl:run-state`` ("running" | "exit 0" | "exit 3" | …),
``runctl:last-checkpoint``, and the ledger tags of :mod:`.billing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from ..tag_keys import FLEET_TAG, GUARDIAN_TAG, LAST_CHECKPOINT_TAG, PROJECT_TAG, RUN_STATE_TAG
from .billing import (
    Basis,
    current_accrual,
    ebs_usd_per_hour,
    stop_time_from_reason,
    tag_dict,
    uptime_seconds,
)
from .warnings import CostWarning, Thresholds, warnings_for

_ALIVE_STATES = ("pending", "running")


def run_tags_as_of(tags: Mapping[str, str], instance_state: str) -> dict[str, str]:
    """The run-state and guardian tags corrected for the instance's state.

    The tags are written while the instance runs; when it stops or terminates without runctl's
    `stop` (the guardian's budget cap, a spot reclaim, the console), a training or a guardian tagged
    as running or watching went with it. Only those two claims change; exit codes and what the
    guardian did stay as written.
    """
    fixed: dict[str, str] = {}
    if instance_state in _ALIVE_STATES:
        return fixed
    how = "terminated" if instance_state in ("shutting-down", "terminated") else "stopped"
    if tags.get(RUN_STATE_TAG) == "running":
        fixed[RUN_STATE_TAG] = f"ended: instance {how}"
    guardian = tags.get(GUARDIAN_TAG) or ""
    if guardian.startswith("watching"):
        fixed[GUARDIAN_TAG] = f"ended: instance {how}"
    elif guardian.startswith("acting"):  # seen mid-action; its end is in the record on the disk
        fixed[GUARDIAN_TAG] = f"ended: instance {how} (last seen {guardian.split(',', 1)[0]})"
    return fixed


def training_text(tags: Mapping[str, str], instance_state: str = "running") -> str | None:
    """The run state from runctl's tags, with the on-instance guardian's state when one watches."""
    tags = {**tags, **run_tags_as_of(tags, instance_state)}
    run_state, guardian = tags.get(RUN_STATE_TAG), tags.get(GUARDIAN_TAG)
    if guardian:
        return f"{run_state or 'none'} · guardian {guardian}"
    return run_state

Lifecycle = Literal["on-demand", "spot", ""]  # "": not an instance (a snapshot row)
Kind = Literal["instance", "snapshot"]


@dataclass(frozen=True)
class CostRow:
    instance_id: str
    instance_type: str
    state: str
    region: str
    name: str | None = None
    az: str | None = None
    lifecycle: Lifecycle = "on-demand"
    launched: datetime | None = None  # tz-aware: the last start (EC2 LaunchTime)
    uptime_seconds: int = 0  # since the last start; 0 unless running
    usd_per_hour: float | None = None
    accrued_usd: float | None = None
    accrued_basis: Basis = "since last start"
    price_source: str = "unknown"
    price_as_of: str = ""
    training: str | None = None
    last_checkpoint: str | None = None
    ebs_usd_per_hour: float | None = None
    project: str | None = None
    warnings: tuple[CostWarning, ...] = field(default_factory=tuple)
    kind: Kind = "instance"
    snapshot_id: str | None = None  # snapshot rows: its ID (instance_id is the instance it was taken from)
    size_gb: float | None = None  # EBS GB: the instance's attached volumes, or the snapshot's volume size
    created: datetime | None = None  # snapshot rows: when it was taken (tz-aware)
    storage_usd_per_month: float | None = None  # EBS storage: the attached volumes, or the snapshot
    gpu: str | None = None  # the type's NVIDIA GPUs, e.g. "1× H200" (DescribeInstanceTypes, once per type)
    fleet: str | None = None  # the fleet it is a node of (runctl:fleet)


class _Quote(Protocol):
    usd_per_hour: float | None
    source: str
    as_of: str


class _Book(Protocol):
    def prefetch(self, pairs: Iterable[tuple[str, str]]) -> Mapping[tuple[str, str], _Quote]: ...
    def on_demand(self, region: str, instance_type: str) -> _Quote: ...
    def spot(self, region: str, az: str | None, instance_type: str) -> _Quote: ...
    def ebs_gb_month(self, region: str) -> float | None: ...


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def cost_row(instance: Mapping[str, Any], quote: _Quote, *, region: str, now: datetime,
             ebs_gb: float = 0.0, ebs_gb_month: float | None = None,
             thresholds: Thresholds | None = None, gpu: str | None = None) -> CostRow:
    """A CostRow from one ``describe_instances`` Instance dict and its price quote (``gpu``: the type's
    NVIDIA GPUs as the table shows them, e.g. "1× A10G")."""
    tags = tag_dict(instance.get("Tags"))
    state = str((instance.get("State") or {}).get("Name", "unknown"))
    running = state == "running"
    launched = _aware(instance.get("LaunchTime"))
    hourly = quote.usd_per_hour
    accrual = current_accrual(tags, launched, now, hourly, running=running,
                              stopped_at=stop_time_from_reason(instance.get("StateTransitionReason")))
    up = uptime_seconds(launched, now, running=running)
    ebs = ebs_usd_per_hour(ebs_gb, ebs_gb_month) if ebs_gb and ebs_gb_month is not None else None
    monthly = ebs_gb * ebs_gb_month if ebs_gb and ebs_gb_month is not None else None
    return CostRow(
        instance_id=str(instance["InstanceId"]),
        instance_type=str(instance.get("InstanceType", "")),
        state=state,
        region=region,
        name=tags.get("Name"),
        az=(instance.get("Placement") or {}).get("AvailabilityZone"),
        lifecycle="spot" if instance.get("InstanceLifecycle") == "spot" else "on-demand",
        launched=launched,
        uptime_seconds=up,
        usd_per_hour=hourly,
        accrued_usd=accrual.usd,
        accrued_basis=accrual.basis,
        price_source=quote.source,
        price_as_of=quote.as_of,
        training=training_text(tags, state),
        last_checkpoint=tags.get(LAST_CHECKPOINT_TAG),
        ebs_usd_per_hour=ebs,
        project=tags.get(PROJECT_TAG),
        warnings=tuple(warnings_for(state, up, accrual.usd, hourly, thresholds)),
        size_gb=float(ebs_gb) if ebs_gb else None,
        storage_usd_per_month=monthly,
        gpu=gpu,
        fleet=tags.get(FLEET_TAG),
    )


def cost_rows(instances: Iterable[Mapping[str, Any]], book: _Book, *, region: str, now: datetime,
              volume_gb: Mapping[str, float] | None = None,
              thresholds: Thresholds | None = None, gpus: Mapping[str, str | None] | None = None) -> list[CostRow]:
    """Rows for many instances: prefetches each distinct type once; spot ones priced per AZ."""
    items = [i for i in instances if (i.get("State") or {}).get("Name") != "terminated"]
    book.prefetch((region, str(i.get("InstanceType", ""))) for i in items
                  if i.get("InstanceLifecycle") != "spot")  # spot ones are priced per AZ below
    gb_month = book.ebs_gb_month(region)
    rows = []
    for inst in items:
        itype = str(inst.get("InstanceType", ""))
        if inst.get("InstanceLifecycle") == "spot":
            quote = book.spot(region, (inst.get("Placement") or {}).get("AvailabilityZone"), itype)
        else:
            quote = book.on_demand(region, itype)
        rows.append(cost_row(inst, quote, region=region, now=now,
                             ebs_gb=(volume_gb or {}).get(str(inst["InstanceId"]), 0.0),
                             ebs_gb_month=gb_month, thresholds=thresholds, gpu=(gpus or {}).get(itype)))
    return rows
