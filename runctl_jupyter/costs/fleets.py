"""A fleet in the cost table (pure): its rows kept together, and its totals and warnings.

A fleet's nodes are instances tagged ``runctl:fleet=NAME`` (the ``fleet`` column). Each node keeps its
own row, price and warnings; :func:`group_fleets` puts a fleet's rows together (where the first of
them sorts, node order inside), and :func:`fleet_totals` adds them up: $/hr of the running nodes,
accrued so far, and the warnings of the fleet as a whole, by the same thresholds as one instance's
(a fleet of 8 nodes at $0.80/hr is a $6.40/hr fleet, over a $5/hr threshold none of its rows crosses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from . import fmt
from .warnings import CostWarning, Thresholds, warnings_for

_NODE = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class FleetTotal:
    name: str
    nodes: int
    running: int
    instance_types: tuple[str, ...]
    usd_per_hour: float | None      # the running nodes' $/hr; None when one of their prices is unknown
    accrued_usd: float | None       # None when a node's accrual is unknown
    warnings: tuple[CostWarning, ...]

    def text(self) -> str:
        """``fleet ddp (3 × g5.xlarge, 3 running, $3.0180/hr, $12.07 accrued)``"""
        kind = "/".join(self.instance_types)
        return (f"fleet {self.name} ({self.nodes} × {kind}, {self.running} running, {fmt.hourly(self.usd_per_hour)}/hr, "
                f"{fmt.usd(self.accrued_usd)} accrued)")


def _has_fleets(df: pd.DataFrame) -> bool:
    return "fleet" in df.columns and bool(df["fleet"].notna().any())


def _node_key(name: object) -> int:
    match = _NODE.search(name) if isinstance(name, str) else None
    return int(match.group(1)) if match else 0


def group_fleets(df: pd.DataFrame) -> pd.DataFrame:
    """The rows in the same order, except that a fleet's rows follow its first one (by node); attrs kept."""
    if not _has_fleets(df):
        return df
    order: list[object] = []
    placed: set[str] = set()
    fleets = df["fleet"]
    for label in df.index:
        name = fleets[label]
        if not isinstance(name, str) or not name:
            order.append(label)
        elif name not in placed:
            placed.add(name)
            members = df.index[fleets.eq(name)]
            order.extend(sorted(members, key=lambda m: (_node_key(df.at[m, "name"]), str(df.at[m, "instance_id"]))))
    return df.loc[order]


def fleet_totals(df: pd.DataFrame, thresholds: Thresholds | None = None) -> list[FleetTotal]:
    """One total per fleet in the frame, in the order the fleets first appear."""
    if not _has_fleets(df):
        return []
    totals = []
    for name in dict.fromkeys(n for n in df["fleet"] if isinstance(n, str) and n):
        rows = df[df["fleet"].eq(name)]
        running = rows[rows["state"].eq("running")]
        hourly = None if running["usd_per_hour"].isna().any() else float(running["usd_per_hour"].sum())
        accrued = None if rows["accrued_usd"].isna().any() else float(rows["accrued_usd"].sum())
        uptime = running["uptime"].max().total_seconds() if len(running) else 0.0
        warns = tuple(warnings_for("running" if len(running) else "stopped", uptime, accrued, hourly, thresholds))
        totals.append(FleetTotal(name, len(rows), len(running), tuple(dict.fromkeys(rows["instance_type"])),
                                 hourly, accrued, tuple(CostWarning(w.kind, w.text.replace("⚠️  ", f"⚠️  Fleet {name}: ", 1))
                                                        for w in warns)))
    return totals
