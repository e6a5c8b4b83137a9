"""The package's dated price snapshot (runctl_jupyter/costs/data/prices.json), read once."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().parent.parent / "costs" / "data" / "prices.json"

LOCATIONS = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)", "us-west-2": "US West (Oregon)",
    "ca-central-1": "Canada (Central)", "sa-east-1": "South America (Sao Paulo)",
    "eu-west-1": "EU (Ireland)", "eu-west-2": "EU (London)", "eu-west-3": "EU (Paris)",
    "eu-central-1": "EU (Frankfurt)", "eu-north-1": "EU (Stockholm)", "eu-south-1": "EU (Milan)",
    "ap-northeast-1": "Asia Pacific (Tokyo)", "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-northeast-3": "Asia Pacific (Osaka)", "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)", "ap-south-1": "Asia Pacific (Mumbai)",
}


@functools.cache
def snapshot() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())


def on_demand(region: str, instance_type: str) -> float | None:
    value = snapshot()["on_demand"].get(region, {}).get(instance_type)
    return None if value is None else float(value)


def types_in(region: str) -> list[str]:
    return sorted(snapshot()["on_demand"].get(region, {}))


def spot_fraction_range() -> tuple[float, float]:
    lo, hi = snapshot()["spot_fraction_range"]
    return float(lo), float(hi)
