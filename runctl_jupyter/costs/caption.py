"""The one-line cost caption shared by the Styler and the shell totals line."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import fmt


@dataclass(frozen=True)
class CaptionInfo:
    """Overrides for the caption; anything None is derived from the frame."""

    price_source: str | None = None  # e.g. "pricing-api"
    price_date: str | None = None  # e.g. "2026-11-01"
    world: str | None = None  # e.g. "sandbox" or "account 123456789012 · us-east-1"
    notes: tuple[str, ...] = ()  # what the table could not show, e.g. snapshots a policy hides


def _prices(df: pd.DataFrame, info: CaptionInfo) -> str:
    if info.price_source is not None:
        return f"{info.price_source} ({info.price_date})" if info.price_date else info.price_source
    known = df[df["price_source"].astype(str) != ""]
    if known.empty:
        return "unknown"
    parts = []
    dates = known["price_as_of"].astype(str).str.slice(0, 10)
    counts = known["price_source"].value_counts()
    for source in sorted(counts.index, key=lambda s: (-counts[s], str(s))):  # most used first
        date = dates[known["price_source"] == source].max()
        parts.append(f"{source} ({date})" if date else str(source))
    return ", ".join(parts)


def _snapshots(rows: pd.DataFrame) -> str:
    """``2 snapshots 60 GB $3.00/month`` (stored EBS, billed until deleted); an unknown price is never $0."""
    monthly = rows["storage_usd_per_month"]
    text = (f"{len(rows)} snapshot{'s' if len(rows) != 1 else ''} {rows['size_gb'].sum():g} GB "
            f"{fmt.usd(float(monthly.sum(min_count=1)))}/month")
    unpriced = int(monthly.isna().sum())
    if unpriced and unpriced < len(rows):
        text += f" + {unpriced} without a known price"
    return text


def caption_text(df: pd.DataFrame, info: CaptionInfo | None = None, *, fleets: bool = True) -> str:
    """``N running · $X.XXXX/hr · $Y.YY accrued · prices: <source> (<date>)`` (+ notes when needed).

    Stored EBS is summed apart: the volumes of stopped instances ($/hr) and runctl's snapshots ($/month);
    "accrued" includes what the snapshots have cost so far. ``fleets``: each fleet's totals and warnings
    (the shell shows them in its fleet headers instead).
    """
    info = info or CaptionInfo()
    running = df["state"].eq("running")
    # min_count=1: when no figure is known at all the total is unknown ($?), not $0; nothing running is $0.
    hourly = float(df.loc[running, "usd_per_hour"].sum(min_count=1)) if running.any() else 0.0
    accrued = float(df["accrued_usd"].sum(min_count=1)) if len(df) else 0.0
    text = (f"{int(running.sum())} running · {fmt.hourly(hourly)}/hr · {fmt.usd(accrued)} accrued"
            f" · prices: {_prices(df, info)}")
    unpriced = int(df.loc[running, "usd_per_hour"].isna().sum())
    if unpriced:
        text += f" · {unpriced} running without a known price"
    snapshots = df["kind"].eq("snapshot") if "kind" in df.columns else pd.Series(False, index=df.index)
    ebs = float(df.loc[~running & ~snapshots, "ebs_usd_per_hour"].sum(min_count=0))
    if ebs > 0:
        text += f" · stopped volumes {fmt.hourly(ebs)}/hr"
    if snapshots.any():
        text += f" · {_snapshots(df.loc[snapshots])}"
    from .fleets import fleet_totals

    for fleet in fleet_totals(df, df.attrs.get("runctl_thresholds")) if fleets else []:
        text += f" · {fleet.text()}" + "".join(f" · {w.text}" for w in fleet.warnings)
    if info.world:
        text += f" · {info.world}"
    for note in info.notes:
        text += f" · ⚠️  {note}"
    return text
