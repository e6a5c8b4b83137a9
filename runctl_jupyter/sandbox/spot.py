"""EC2 DescribeSpotPriceHistory: per-AZ deterministic prices, a fraction of on-demand.

price(type, AZ) = on-demand(region, type) × (lo + (hi-lo) × h), h ∈ [0,1] from sha256(type|AZ), with
[lo, hi] the snapshot's spot_fraction_range. The price is constant, so every row is stamped with the
sandbox clock (or EndTime if that is earlier): the price in effect over the whole asked window.
"""

from __future__ import annotations

import hashlib
from xml.sax.saxutils import escape

from werkzeug.wrappers import Response

from . import moto_seams
from .clock import iso, parse_instant
from .prices import on_demand, spot_fraction_range, types_in
from .protocol import AwsRequest, ec2_error, ec2_xml
from .world import World

LINUX = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")


def spot_price(region: str, instance_type: str, az: str) -> float | None:
    base = on_demand(region, instance_type)
    if base is None:
        return None
    lo, hi = spot_fraction_range()
    h = int(hashlib.sha256(f"{instance_type}|{az}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return round(base * (lo + (hi - lo) * h), 6)


def _filters(req: AwsRequest) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    index = 1
    while f"Filter.{index}.Name" in req.params:
        found[req.params[f"Filter.{index}.Name"]] = req.param_list(f"Filter.{index}.Value")
        index += 1
    return found


def describe_spot_price_history(world: World, req: AwsRequest) -> Response:
    filters = _filters(req)
    types = req.param_list("InstanceType") or filters.get("instance-type") or types_in(req.region)
    products = req.param_list("ProductDescription") or filters.get("product-description") or [LINUX[0]]
    with world.moto_lock:
        zones = moto_seams.availability_zones(req.region)
    wanted_az = req.params.get("AvailabilityZone")
    if wanted_az:
        if wanted_az not in zones:
            return ec2_error("InvalidParameterValue", f"Invalid availability zone: [{wanted_az}]")
        zones = [wanted_az]
    if filters.get("availability-zone"):
        zones = [z for z in zones if z in filters["availability-zone"]]
    stamp = world.clock.now()
    try:
        if req.params.get("EndTime"):
            stamp = min(stamp, parse_instant(req.params["EndTime"]))
        if req.params.get("StartTime") and req.params.get("EndTime") and \
                parse_instant(req.params["StartTime"]) > parse_instant(req.params["EndTime"]):
            return ec2_error("InvalidParameterValue", "StartTime must be before EndTime.")
    except ValueError:
        return ec2_error("InvalidParameterValue", "StartTime/EndTime must be ISO-8601 instants.")
    rows = []
    for instance_type in types:
        for az in zones:
            price = spot_price(req.region, instance_type, az)
            if price is None:
                continue
            for prod in products:
                if prod in LINUX:
                    rows.append((instance_type, prod, price, az))
    start = int(req.params.get("NextToken") or 0)
    size = int(req.params.get("MaxResults") or 1000)
    page = rows[start:start + size]
    items = "".join(
        f"<item><instanceType>{escape(t)}</instanceType><productDescription>{escape(p)}</productDescription>"
        f"<spotPrice>{price:.6f}</spotPrice><timestamp>{iso(stamp)}</timestamp>"
        f"<availabilityZone>{escape(az)}</availabilityZone></item>"
        for t, p, price, az in page)
    token = str(start + size) if start + size < len(rows) else ""
    return ec2_xml("DescribeSpotPriceHistory",
                   f"<spotPriceHistorySet>{items}</spotPriceHistorySet><nextToken>{token}</nextToken>")
