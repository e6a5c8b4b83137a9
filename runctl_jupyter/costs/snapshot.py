"""The package's dated price snapshot (``data/prices.json``): the offline fallback (pure, stdlib)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Snapshot:
    date: str
    currency: str
    on_demand: dict[str, dict[str, float]]
    ebs_gp3_gb_month: dict[str, float]
    spot_fraction_range: tuple[float, float]
    ebs_snapshot_gb_month: dict[str, float] = field(default_factory=dict)  # standard tier
    s3_standard_gb_month: dict[str, float] = field(default_factory=dict)  # S3 Standard, first 50 TB
    description: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Snapshot:
        lo, hi = d.get("spot_fraction_range", (0.3, 0.5))
        return cls(date=str(d["date"]), currency=str(d.get("currency", "USD")),
                   on_demand={r: {t: float(p) for t, p in ts.items()} for r, ts in d["on_demand"].items()},
                   ebs_gp3_gb_month={r: float(p) for r, p in d.get("ebs_gp3_gb_month", {}).items()},
                   spot_fraction_range=(float(lo), float(hi)),
                   ebs_snapshot_gb_month={r: float(p) for r, p in d.get("ebs_snapshot_gb_month", {}).items()},
                   s3_standard_gb_month={r: float(p) for r, p in d.get("s3_standard_gb_month", {}).items()},
                   description=str(d.get("description", "")))

    def on_demand_price(self, region: str, instance_type: str) -> float | None:
        return self.on_demand.get(region, {}).get(instance_type)

    def ebs_gb_month(self, region: str) -> float | None:
        return self.ebs_gp3_gb_month.get(region)

    def ebs_snapshot_price(self, region: str) -> float | None:
        """EBS snapshot storage (standard tier), USD per GB-month; None for a region not in the file."""
        return self.ebs_snapshot_gb_month.get(region)

    def s3_price(self, region: str) -> float | None:
        """S3 Standard storage, USD per GB-month (first 50 TB); None for a region not in the file."""
        return self.s3_standard_gb_month.get(region)

    @property
    def spot_mid_fraction(self) -> float:
        lo, hi = self.spot_fraction_range
        return (lo + hi) / 2


@lru_cache(maxsize=1)
def load_snapshot() -> Snapshot:
    text = resources.files("runctl_jupyter.costs").joinpath("data/prices.json").read_text("utf-8")
    return Snapshot.from_dict(json.loads(text))
