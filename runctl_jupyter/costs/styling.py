"""The resources DataFrame as a pandas Styler: warned rows highlighted, money formatted, a caption.

Long-running rows are amber, high-cost / high-hourly rows red (red wins); the cell that triggered a
warning is stronger and bold. The uuid is fixed ("runctl") so notebook output is stable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from . import fmt
from .caption import CaptionInfo, caption_text
from .table import row_warnings
from .warnings import Thresholds

AMBER_ROW = "#fff3cd"
AMBER_CELL = "#ffd966"
RED_ROW = "#f8d7da"
RED_CELL = "#f1959f"

_CELL_FOR_KIND = {"long_running": ("uptime", AMBER_CELL), "high_cost": ("accrued_usd", RED_CELL),
                  "high_hourly": ("usd_per_hour", RED_CELL)}


def _css(df: pd.DataFrame, thresholds: Thresholds | None) -> pd.DataFrame:
    css = np.full(df.shape, "", dtype=object)
    col = {c: i for i, c in enumerate(df.columns)}
    for r, warns in enumerate(row_warnings(df, thresholds)):
        if not warns:
            continue
        kinds = {w.kind for w in warns}
        row_colour = RED_ROW if kinds & {"high_cost", "high_hourly"} else AMBER_ROW
        css[r, :] = f"background-color: {row_colour}"
        for kind in kinds:
            name, colour = _CELL_FOR_KIND[kind]
            if name in col:
                css[r, col[name]] = f"background-color: {colour}; font-weight: bold"
    return pd.DataFrame(css, index=df.index, columns=df.columns)


def _launched(ts: pd.Timestamp) -> str:
    return "" if pd.isna(ts) else ts.strftime("%Y-%m-%d %H:%M UTC")


def _size(gb: float) -> str:
    return "" if pd.isna(gb) else f"{gb:g}"


def _uptime(td: pd.Timedelta) -> str:
    return "" if pd.isna(td) or td.total_seconds() == 0 else fmt.uptime(td.total_seconds())


def style(df: pd.DataFrame, caption_info: CaptionInfo | None = None, *,
          thresholds: Thresholds | None = None) -> Styler:
    """A Styler over ``df`` (the frame itself is left unchanged)."""
    styler = df.style.set_uuid("runctl")
    styler = styler.hide(axis="index")
    styler = styler.apply(_css, axis=None, thresholds=thresholds)
    formats: dict[str, Callable[[Any], str]] = {c: fmt.hourly for c in ("usd_per_hour", "ebs_usd_per_hour") if c in df.columns}
    for c in ("accrued_usd", "storage_usd_per_month"):
        if c in df.columns:
            formats[c] = fmt.usd
    if "launched" in df.columns:
        formats["launched"] = _launched
    if "uptime" in df.columns:
        formats["uptime"] = _uptime
    styler = styler.format(formats, na_rep="—")  # "—": unknown (a price runctl does not know)
    # Blank, not "—", where a column does not apply: when a snapshot was taken (instance rows), its size.
    blank = {c: f for c, f in (("created", _launched), ("size_gb", _size)) if c in df.columns}
    for c, f in blank.items():
        styler = styler.format(f, subset=[c], na_rep="")
    styler = styler.format(na_rep="", subset=[c for c in df.columns if c not in formats and c not in blank])
    if "kind" in df.columns and df["kind"].eq("snapshot").any():  # a snapshot has no compute columns
        compute = [c for c in ("launched", "usd_per_hour") if c in df.columns]
        styler = styler.format(na_rep="", subset=pd.IndexSlice[df.index[df["kind"].eq("snapshot")], compute])
    styler = styler.set_caption(caption_text(df, caption_info))
    styler = styler.set_table_attributes('class="runctl-resources"')
    return styler.set_table_styles([
        {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold;"},
        {"selector": "td", "props": "white-space: pre-line;"},
    ])
