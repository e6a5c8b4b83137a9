"""Cost warnings (pure), with runctl's exact texts.

Rules (running instances only; every threshold is strict and configurable):
  uptime  > 24 h, measured in seconds (24 h exactly: none; 24 h + 1 s: a warning)
  accrued > $10   (compared in whole cents, as printed: $10.00 none, $10.01 a warning)
  hourly  > $5/hr (compared at the printed 4 decimals)

Texts follow runctl's ``list_aws_instances``: hours floored, accrued with 2 decimals, hourly with 4
(``format!("⚠️  High hourly cost: ${:.4}/hr", …)``); two spaces after the emoji.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WarningKind = Literal["long_running", "high_cost", "high_hourly"]
WARNING_KINDS: tuple[WarningKind, ...] = ("long_running", "high_cost", "high_hourly")

EMOJI = "⚠️"


@dataclass(frozen=True)
class Thresholds:
    uptime_hours: float = 24.0
    accrued_usd: float = 10.0
    hourly_usd: float = 5.0

    def __post_init__(self) -> None:
        for name in ("uptime_hours", "accrued_usd", "hourly_usd"):
            if getattr(self, name) < 0:
                raise ValueError(f"threshold {name} must be >= 0")


@dataclass(frozen=True)
class CostWarning:
    """One warning for one instance. (Not named ``Warning``: that is a Python built-in.)"""

    kind: WarningKind
    text: str


def long_running_text(uptime_seconds: float, accrued: float | None) -> str:
    hours = int(uptime_seconds // 3600)
    money = f"${accrued:.2f} accumulated" if accrued is not None else "cost unknown"
    return f"{EMOJI}  Running {hours} hours ({money})"


def high_cost_text(accrued: float) -> str:
    return f"{EMOJI}  High cost: ${accrued:.2f} accumulated"


def high_hourly_text(hourly: float) -> str:
    return f"{EMOJI}  High hourly cost: ${hourly:.4f}/hr"


def warnings_for(state: str, uptime_seconds: float, accrued: float | None, hourly: float | None,
                 thresholds: Thresholds | None = None) -> list[CostWarning]:
    """The warnings runctl shows for one instance, in runctl's order."""
    t = thresholds or Thresholds()
    if state != "running":
        return []
    out: list[CostWarning] = []
    if uptime_seconds > t.uptime_hours * 3600:
        out.append(CostWarning("long_running", long_running_text(uptime_seconds, accrued)))
    if accrued is not None and round(accrued, 2) > t.accrued_usd:
        out.append(CostWarning("high_cost", high_cost_text(accrued)))
    if hourly is not None and round(hourly, 4) > t.hourly_usd:
        out.append(CostWarning("high_hourly", high_hourly_text(hourly)))
    return out
