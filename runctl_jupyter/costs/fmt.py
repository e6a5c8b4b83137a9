"""Number formats shared by the Styler and the shell text (pure): runctl's own formats."""

from __future__ import annotations

import math


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def hourly(x: float | None) -> str:
    """``$0.0104`` (4 decimals, as runctl prints $/hr); ``$?`` when unknown."""
    return "$?" if _missing(x) else f"${x:.4f}"


def usd(x: float | None) -> str:
    """``$0.26`` (2 decimals, as runctl prints totals); ``$?`` when unknown."""
    return "$?" if _missing(x) else f"${x:.2f}"


def uptime(seconds: float | None) -> str:
    """``25h 30m`` / ``6h 18m 13s`` (seconds shown when not zero), as in runctl's listings."""
    if _missing(seconds):
        return ""
    total = max(0, int(seconds))  # type: ignore[arg-type]
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m}m {s}s" if s else f"{h}h {m}m"
