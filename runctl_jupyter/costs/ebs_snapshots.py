"""Cost rows for runctl's EBS snapshots (pure): what ``terminate --snapshot`` saved keeps billing.

A snapshot is read from ``describe_snapshots`` (runctl's carry the tag ``runctl:instance``). Its
row: ``kind="snapshot"``, ``snapshot_id``, ``instance_id`` = the instance it was taken from,
``project``, ``size_gb`` (the source volume's size), ``created``, ``storage_usd_per_month``
(size × the snapshot storage price), ``ebs_usd_per_hour`` (the same per hour: the cost table sums
stored EBS per hour, as for a stopped instance's volumes) and ``accrued_usd`` (since it was taken,
basis "since created"). The price is the standard tier's; AWS bills only the blocks a snapshot
holds, at most the volume's size, so the figure is an upper bound. An archived snapshot is priced
at the archive tier, which runctl does not know: "unknown", never a quiet $0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ..tag_keys import CREATED_TAG, INSTANCE_TAG
from .billing import HOURS_PER_MONTH, tag_dict
from .rows import PROJECT_TAG, CostRow


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _created(snapshot: Mapping[str, Any], tags: Mapping[str, str]) -> datetime | None:
    start = snapshot.get("StartTime")
    if isinstance(start, datetime):
        return _aware(start)
    day = tags.get(CREATED_TAG, "")
    try:
        return _aware(datetime.fromisoformat(day)) if day else None
    except ValueError:
        return None


def snapshot_storage_usd(size_gb: float, gb_month_usd: float, created: datetime | None, now: datetime) -> float:
    """What a snapshot has cost since it was taken: GB × $/GB-month × months (730 hours a month)."""
    if created is None:
        return 0.0
    hours = max(0.0, (_aware(now) - created).total_seconds() / 3600.0)
    return size_gb * gb_month_usd * hours / HOURS_PER_MONTH


def snapshot_row(snapshot: Mapping[str, Any], *, region: str, now: datetime, gb_month: float | None,
                 as_of: str = "") -> CostRow:
    """A CostRow for one ``describe_snapshots`` Snapshot dict priced at ``gb_month`` USD per GB-month."""
    tags = tag_dict(snapshot.get("Tags"))
    size = float(snapshot.get("VolumeSize") or 0)
    created = _created(snapshot, tags)
    price = gb_month if snapshot.get("StorageTier", "standard") == "standard" else None
    accrued = hourly = monthly = None
    if price is not None:
        accrued = snapshot_storage_usd(size, price, created, now)
        hourly, monthly = size * price / HOURS_PER_MONTH, size * price
    return CostRow(
        instance_id=tags.get(INSTANCE_TAG, ""),
        instance_type="",
        state=str(snapshot.get("State", "unknown")),
        region=region,
        name=tags.get("Name"),
        lifecycle="",
        accrued_usd=accrued,
        accrued_basis="since created",
        price_source="snapshot" if price is not None else "unknown",
        price_as_of=as_of if price is not None else "",
        ebs_usd_per_hour=hourly,
        project=tags.get(PROJECT_TAG) or None,
        kind="snapshot",
        snapshot_id=str(snapshot["SnapshotId"]),
        size_gb=size,
        created=created,
        storage_usd_per_month=monthly,
    )


def snapshot_rows(snapshots: Iterable[Mapping[str, Any]], *, region: str, now: datetime,
                  gb_month: float | None, as_of: str = "") -> list[CostRow]:
    """Rows for runctl's snapshots (those tagged ``runctl:instance``); others are not runctl's."""
    return [snapshot_row(s, region=region, now=now, gb_month=gb_month, as_of=as_of) for s in snapshots
            if INSTANCE_TAG in tag_dict(s.get("Tags"))]
