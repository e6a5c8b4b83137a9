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


def caption_text(df: pd.DataFrame, info: CaptionInfo | None = None) -> str:
    """``N running · $X.XXXX/hr · $Y.YY accrued · prices: <source> (<date>)`` (+ notes when needed)."""
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
    ebs = float(df.loc[~running, "ebs_usd_per_hour"].sum(min_count=0))
    if ebs > 0:
        text += f" · stopped volumes {fmt.hourly(ebs)}/hr"
    if info.world:
        text += f" · {info.world}"
    return text
