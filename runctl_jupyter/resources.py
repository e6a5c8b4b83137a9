"""``resources list|summary``: what runs and what it costs, as a DataFrame.

One paginated DescribeInstances (+ one DescribeVolumes) and one paginated DescribeSnapshots (runctl's
own, tagged ``runctl:instance`` by ``terminate --snapshot``) per region, regions queried
concurrently; prices from one PriceBook per process (Pricing API → disk cache → dated snapshot; spot
from the AZ's price history; EBS and snapshot storage from the dated snapshot). Training status and
the cost ledger come from runctl's tags: no SSM calls.
"""

from __future__ import annotations

import difflib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .aws.session import Context
from .errors import RunctlError, Step, UsageError, cmd, translate_aws_errors
from .grammar import check_region, split_region_list

_BOOKS: dict[str, Any] = {}
MAX_REGION_WORKERS = 16
# Every state an EC2 instance can be in (what `--filter` accepts).
EC2_STATES = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")


def check_state(state: str, verb: str = "list") -> str:
    """``state`` as EC2 spells it (``Running`` → ``running``), or a :class:`UsageError` listing the
    valid states when it is none of them (as an unknown sort key is)."""
    name = state.strip().lower()
    if name in EC2_STATES:
        return name
    steps = [Step(f"Use one of: {', '.join(EC2_STATES)}")]
    close = difflib.get_close_matches(name, EC2_STATES, n=1)
    example = close[0] if close else "running"
    steps.append(cmd(f"resources {verb} --filter {example}", "Did you mean" if close else "For example"))
    raise UsageError(f"Unknown instance state '{state}'.", steps)


def price_book(ctx: Context):
    """One PriceBook per world (warm calls cost no Pricing API call)."""
    from .costs import PriceBook

    key = ctx.world_key
    book = _BOOKS.get(key)
    if book is None:
        book = PriceBook(ctx.client_factory(), ctx.cache_dir, ttl_hours=ctx.settings.price_cache_ttl_hours,
                         clock=ctx.now)
        _BOOKS[key] = book
    return book


def thresholds(ctx: Context):
    from .costs import Thresholds

    s = ctx.settings
    return Thresholds(uptime_hours=s.warn_uptime_hours, accrued_usd=s.warn_accrued_usd, hourly_usd=s.warn_hourly_usd)


def resolve_regions(ctx: Context, regions: str | None, all_regions: bool) -> list[str]:
    if all_regions:
        with translate_aws_errors("list the enabled regions"):
            resp = ctx.client("ec2").describe_regions(
                Filters=[{"Name": "opt-in-status", "Values": ["opt-in-not-required", "opted-in"]}])
        return sorted(r["RegionName"] for r in resp["Regions"])
    if regions:
        names = split_region_list(regions)
        for name in names:
            check_region(name, flag="--regions")  # from the bundled endpoint data: no AWS call
        return names
    return [ctx.region]


_DENIED = {"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}


def _snapshots(ec2: Any, region: str) -> list[dict] | None:
    """runctl's EBS snapshots of a region (paginated); None when the policy does not allow listing
    them (a policy written before snapshots were listed): the table then says so, it does not fail."""
    from .costs.ebs_snapshots import INSTANCE_TAG

    with translate_aws_errors(f"list runctl's EBS snapshots in {region}"):
        try:
            return [s for page in ec2.get_paginator("describe_snapshots").paginate(
                        OwnerIds=["self"], Filters=[{"Name": "tag-key", "Values": [INSTANCE_TAG]}],
                        PaginationConfig={"PageSize": 1000})
                    for s in page.get("Snapshots", [])]
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in _DENIED:
                return None
            raise


def _gpus_of_types(ctx: Context, region: str, types: set[str]) -> dict[str, str | None]:
    """Each type's NVIDIA GPUs as the table shows them (DescribeInstanceTypes, once per type and region
    in this process; a type that cannot be described shows none rather than failing the listing)."""
    from .aws.instance_types import describe_type

    out: dict[str, str | None] = {}
    for itype in sorted(t for t in types if t):
        try:
            out[itype] = describe_type(ctx, itype, region).gpus_short()
        except RunctlError:
            out[itype] = None  # the GPU column is a convenience: the row (and its cost) stays right
    return out


def _region_rows(ctx: Context, region: str, book, now, limits) -> tuple[list, bool]:
    """(cost rows of the region's instances and runctl's snapshots, whether snapshots could be listed)."""
    from .costs import cost_rows
    from .costs.ebs_snapshots import snapshot_rows

    ec2 = ctx.client("ec2", region)
    instances: list[dict] = []
    with translate_aws_errors(f"list instances in {region}"):
        for page in ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 1000}):
            for reservation in page.get("Reservations", []):
                instances.extend(reservation.get("Instances", []))
        volume_gb: dict[str, float] = {}
        live = [i for i in instances if i.get("State", {}).get("Name") != "terminated"]
        if live:
            for page in ec2.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 1000}):
                for vol in page.get("Volumes", []):
                    for att in vol.get("Attachments", []):
                        volume_gb[att["InstanceId"]] = volume_gb.get(att["InstanceId"], 0.0) + vol.get("Size", 0)
    snapshots = _snapshots(ec2, region)
    rows = cost_rows(live, book, region=region, now=now, volume_gb=volume_gb, thresholds=limits,
                     gpus=_gpus_of_types(ctx, region, {str(i.get("InstanceType", "")) for i in live}))
    rows += snapshot_rows(snapshots or [], region=region, now=now, gb_month=book.ebs_snapshot_gb_month(region),
                          as_of=book.snapshot.date)
    return rows, snapshots is not None


def list_frame(ctx: Context, *, regions: str | None = None, all_regions: bool = False,
               state: str | None = None, project: str | None = None, sort: str = "cost"):
    """The resources DataFrame (plain; the notebook shows it styled once)."""
    from .costs import CaptionInfo, filter_rows, frame, sort_rows
    from .costs.fleets import group_fleets

    if state is not None:
        state = check_state(state)  # before any AWS call, as a usage error
    names = resolve_regions(ctx, regions, all_regions)
    book, now, limits = price_book(ctx), ctx.now(), thresholds(ctx)
    if len(names) == 1:
        parts = [_region_rows(ctx, names[0], book, now, limits)]
    else:
        with ThreadPoolExecutor(max_workers=min(MAX_REGION_WORKERS, len(names))) as pool:
            parts = list(pool.map(lambda n: _region_rows(ctx, n, book, now, limits), names))
    df = frame([r for rows, _listed in parts for r in rows])
    unlisted = [name for name, (_rows, listed) in zip(names, parts, strict=True) if not listed]
    if state or project:
        df = filter_rows(df, state=state, project=project)
    df = group_fleets(sort_rows(df, sort))
    world = ctx.world().label() if len(names) == 1 else ("sandbox" if ctx.is_sandbox else "AWS") + \
        f" · {len(names)} regions"
    notes = (f"snapshots not listed in {', '.join(unlisted)} (ec2:DescribeSnapshots not allowed)",) if unlisted else ()
    df.attrs["runctl_caption_info"] = CaptionInfo(world=world, notes=notes)
    df.attrs["runctl_thresholds"] = limits
    return df
