"""Costs: billing arithmetic and warnings (pure), price sources, and the resources table.

Importing this package imports neither pandas nor boto3; the table/styling/plot functions are
loaded on first use (``from runctl_jupyter.costs import frame`` imports pandas then).
"""

from __future__ import annotations

import importlib
from typing import Any

from .billing import (
    Accrual,
    Ledger,
    accrued_usd,
    billed_seconds,
    current_accrual,
    ebs_usd_per_hour,
    ledger_after_stop,
    ledger_from_tags,
    stop_time_from_reason,
    uptime_seconds,
)
from .ebs_snapshots import snapshot_row, snapshot_rows
from .pricelist import parse_price_list, product_filters
from .pricing import PriceBook, PriceQuote
from .rows import CostRow, cost_row, cost_rows
from .snapshot import Snapshot, load_snapshot
from .warnings import CostWarning, Thresholds, warnings_for

_LAZY = {
    "frame": "table", "summary": "table", "filter_rows": "table", "sort_rows": "table",
    "export": "table", "style": "styling", "render_text": "text", "plot": "plot",
    "CaptionInfo": "caption", "caption_text": "caption",
}

__all__ = [
    "Accrual", "CostRow", "CostWarning", "Ledger", "PriceBook", "PriceQuote", "Snapshot", "Thresholds",
    "accrued_usd", "billed_seconds", "cost_row", "cost_rows", "current_accrual", "ebs_usd_per_hour",
    "ledger_after_stop", "ledger_from_tags", "load_snapshot", "parse_price_list", "product_filters",
    "snapshot_row", "snapshot_rows", "stop_time_from_reason", "uptime_seconds", "warnings_for", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
