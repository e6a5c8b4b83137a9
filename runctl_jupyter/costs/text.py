"""The shell layout of ``runctl resources list`` (as in the runctl docs)::

      t3.micro (11 running, $0.1144/hr)
        i-xxx  running  (25h 30m)  $0.0104/hr ($0.26 total)
          ⚠️  Running 25 hours ($0.26 accumulated)
      fleet ddp (2 × g5.xlarge, 2 running, $2.0120/hr, $4.02 accrued)
        i-yyy  running  (2h 0m)  $1.0060/hr ($2.01 total)
        i-zzz  running  (2h 0m)  $1.0060/hr ($2.01 total)
      EBS snapshots (1, 30 GB, $1.50/month)
        snap-0abc…  from i-xxx  project mnist  30 GB  created 2026-11-02  $1.50/month ($0.15 so far)
      Total: 11 running · $0.1144/hr · $0.41 accrued · prices: snapshot (2026-11-01) · 1 snapshot 30 GB $1.50/month

Groups follow the frame's row order (sort first to choose it); a fleet's nodes are a group of their own,
under their totals and the fleet's warnings; runctl's snapshots come last, in their own group.
"total" is the ledger figure; without a ledger the line says "since last start".
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import fmt
from .caption import CaptionInfo, caption_text
from .fleets import fleet_totals
from .table import row_warnings


def _instance_line(r: dict[str, Any]) -> str:
    acc = None if pd.isna(r["accrued_usd"]) else float(r["accrued_usd"])
    basis = "total" if r["accrued_basis"] == "ledger" else "since last start"
    total = f" ({fmt.usd(acc)} {basis})" if acc is not None else ""
    if r["state"] == "running":
        secs = r["uptime"].total_seconds() if pd.notna(r["uptime"]) else 0
        line = f"    {r['instance_id']}  running  ({fmt.uptime(secs)})  {fmt.hourly(r['usd_per_hour'])}/hr{total}"
    else:
        line = f"    {r['instance_id']}  {r['state']}"
        if pd.notna(r["ebs_usd_per_hour"]):
            line += f"  EBS {fmt.hourly(r['ebs_usd_per_hour'])}/hr (volumes still bill)"
        line += total
    training = r.get("training")
    if isinstance(training, str) and training and training != "none":
        line += f"  [training: {training}]"
    return line


def _snapshot_line(r: dict[str, Any]) -> str:
    created = "" if pd.isna(r["created"]) else f"  created {r['created']:%Y-%m-%d}"
    project = f"  project {r['project']}" if isinstance(r.get("project"), str) and r["project"] else ""
    state = "" if r["state"] == "completed" else f"  {r['state']}"
    return (f"    {r['snapshot_id']}  from {r['instance_id'] or '?'}{project}  {r['size_gb']:g} GB{created}{state}"
            f"  {fmt.usd(r['storage_usd_per_month'])}/month ({fmt.usd(r['accrued_usd'])} so far)")


def _snapshot_header(rows: list[dict[str, Any]]) -> str:
    monthly = [r["storage_usd_per_month"] for r in rows]
    known = [float(m) for m in monthly if pd.notna(m)]
    price = f"{fmt.usd(sum(known))}/month" if known else "price unknown"
    if known and len(known) < len(rows):
        price += f" + {len(rows) - len(known)} without a known price"
    return f"  EBS snapshots ({len(rows)}, {sum(float(r['size_gb']) for r in rows):g} GB, {price})"


def _group_header(itype: str, running: int, hourly: float, unpriced: int, gpu: str | None = None) -> str:
    """``t3.micro (2 running, $0.0208/hr)``, ``g5.xlarge · 1× A10G (…)``; a price runctl does not know is
    never shown as $0."""
    if gpu:
        itype = f"{itype} · {gpu}"
    if running and unpriced == running:
        return f"  {itype} ({running} running, price unknown)"
    text = f"  {itype} ({running} running, {fmt.hourly(hourly)}/hr"
    if unpriced:
        text += f" + {unpriced} without a known price"
    return text + ")"


def render_text(df: pd.DataFrame, caption_info: CaptionInfo | None = None) -> str:
    """The listing as runctl prints it in a shell, ending with a totals line."""
    groups: dict[str, list[str]] = {}
    gpu_of: dict[str, str | None] = {}
    totals: dict[str, list[Any]] = {}  # type -> [running count, $/hr of the priced running, unpriced count]
    snapshots: list[dict[str, Any]] = []
    for r, warns in zip(df.to_dict("records"), row_warnings(df), strict=True):
        if r.get("kind") == "snapshot":
            snapshots.append(r)
            continue
        itype = f"fleet {r['fleet']}" if isinstance(r.get("fleet"), str) and r["fleet"] else str(r["instance_type"])
        block = groups.setdefault(itype, [])
        gpu_of[itype] = r.get("gpu") if isinstance(r.get("gpu"), str) else None
        total = totals.setdefault(itype, [0, 0.0, 0])
        if r["state"] == "running":
            total[0] += 1
            if pd.notna(r["usd_per_hour"]):
                total[1] += float(r["usd_per_hour"])
            else:
                total[2] += 1
        block.append(_instance_line(r))
        block.extend(f"      {w.text}" for w in warns)
    lines: list[str] = []
    fleets = {f"fleet {t.name}": t for t in fleet_totals(df, df.attrs.get("runctl_thresholds"))}
    for itype, block in groups.items():
        fleet = fleets.get(itype)
        running, hourly, unpriced = totals[itype]
        lines.append(f"  {fleet.text()}" if fleet else _group_header(itype, running, hourly, unpriced, gpu_of.get(itype)))
        lines.extend(f"      {w.text}" for w in (fleet.warnings if fleet else ()))
        lines.extend(block)
    if snapshots:
        lines.append(_snapshot_header(snapshots))
        lines.extend(_snapshot_line(r) for r in snapshots)
    if df.empty:
        lines.append("  No instances.")
    lines.append(f"  Total: {caption_text(df, caption_info, fleets=False)}")
    return "\n".join(lines)
