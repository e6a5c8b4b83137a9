"""Billing arithmetic (pure): per-second billing with a 60-second minimum per start, and the ledger.

EC2 ``LaunchTime`` is the *last* start, so "cost since launch" undercounts an instance that was
stopped and started again. runctl keeps a ledger in the instance's tags, updated when it stops it:

    runctl:ledger-seconds   billed seconds of earlier, finished runs
    runctl:ledger-usd       their cost in USD
    runctl:ledger-through   LaunchTime (ISO-8601) of the last run already counted — makes the
                            update idempotent and lets a stop made outside runctl be detected

``accrued = ledger + current run since LaunchTime``. Without a ledger the figure only covers the
current run and is labelled "since last start".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ..tag_keys import LEDGER_SECONDS_TAG, LEDGER_THROUGH_TAG, LEDGER_USD_TAG

MINIMUM_BILLED_SECONDS = 60  # AWS: per-second billing, 60 s minimum each time an instance starts
HOURS_PER_MONTH = 730  # AWS prices EBS per GB-month; it converts with 730 hours a month

Basis = Literal["ledger", "since last start", "since created"]  # the last: EBS snapshot storage

TagsLike = Mapping[str, str] | Iterable[Mapping[str, str]]


def tag_dict(tags: TagsLike | None) -> dict[str, str]:
    """Tags as a dict, from a dict or boto3's ``[{"Key": …, "Value": …}]`` list."""
    if tags is None:
        return {}
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags}


def billed_seconds(run_seconds: float) -> int:
    """Seconds AWS bills for one run: whole seconds (rounded down), at least 60 for any run > 0 s."""
    if run_seconds <= 0:
        return 0
    return max(MINIMUM_BILLED_SECONDS, math.floor(run_seconds))


def accrued_usd(hourly: float, seconds: float) -> float:
    """Cost of ``seconds`` billed seconds at ``hourly`` USD per hour."""
    return hourly * seconds / 3600.0


def ebs_usd_per_hour(size_gb: float, gb_month_usd: float) -> float:
    """What attached volumes cost per hour (they bill while the instance is stopped, too)."""
    return size_gb * gb_month_usd / HOURS_PER_MONTH


@dataclass(frozen=True)
class Ledger:
    seconds: int
    usd: float
    through: datetime | None = None  # LaunchTime of the last run included


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _iso(dt: datetime) -> str:
    return _aware(dt).astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def ledger_from_tags(tags: TagsLike | None) -> Ledger | None:
    """The ledger kept in an instance's tags; None when it has none (or it is unreadable)."""
    t = tag_dict(tags)
    if LEDGER_SECONDS_TAG not in t and LEDGER_USD_TAG not in t:
        return None
    try:
        seconds = int(t.get(LEDGER_SECONDS_TAG, "0") or 0)
        usd = float(t.get(LEDGER_USD_TAG, "0") or 0)
    except ValueError:
        return None  # a hand-edited tag: report "since last start" rather than a wrong total
    if seconds < 0 or usd < 0 or not math.isfinite(usd):
        return None
    through = t.get(LEDGER_THROUGH_TAG)
    return Ledger(seconds, usd, _parse_iso(through) if through else None)


def ledger_tags(ledger: Ledger) -> dict[str, str]:
    """Tag values that store ``ledger`` (for ``create_tags``)."""
    out = {LEDGER_SECONDS_TAG: str(ledger.seconds), LEDGER_USD_TAG: f"{ledger.usd:.6f}"}
    if ledger.through is not None:
        out[LEDGER_THROUGH_TAG] = _iso(ledger.through)
    return out


def ledger_after_stop(tags: TagsLike | None, launch_time: datetime, stop_time: datetime,
                      hourly: float) -> dict[str, str]:
    """New ledger tag values once the run that began at ``launch_time`` ended at ``stop_time``.

    Idempotent: if the ledger already counts the run started at ``launch_time``, it is unchanged.
    """
    old = ledger_from_tags(tags) or Ledger(0, 0.0)
    if old.through is not None and old.through == _aware(launch_time):
        return ledger_tags(old)
    billed = billed_seconds((_aware(stop_time) - _aware(launch_time)).total_seconds())
    new = Ledger(old.seconds + billed, old.usd + accrued_usd(hourly, billed), _aware(launch_time))
    return ledger_tags(new)


@dataclass(frozen=True)
class Accrual:
    usd: float | None  # None: no price known, or nothing can be said (stopped, no ledger, no stop time)
    billed_seconds: int  # ledger + current run
    current_seconds: int  # billed seconds of the current (or last, uncounted) run
    basis: Basis


def current_accrual(tags: TagsLike | None, launch_time: datetime | None, now: datetime,
                    hourly: float | None, *, running: bool = True,
                    stopped_at: datetime | None = None) -> Accrual:
    """What an instance has cost: ledger (earlier runs) + the current run since ``launch_time``.

    For a stopped instance the current run is 0 s, unless the ledger does not count its last run
    (stopped outside runctl) and ``stopped_at`` is known (see :func:`stop_time_from_reason`).
    """
    ledger = ledger_from_tags(tags)
    basis: Basis = "ledger" if ledger is not None else "since last start"
    current = 0
    if launch_time is not None:
        counted = ledger is not None and ledger.through == _aware(launch_time)
        if running and not counted:
            current = billed_seconds((_aware(now) - _aware(launch_time)).total_seconds())
        elif not running and not counted and stopped_at is not None:
            current = billed_seconds((_aware(stopped_at) - _aware(launch_time)).total_seconds())
    base_seconds = ledger.seconds if ledger else 0
    usd: float | None
    if (current > 0 and hourly is None) or (not running and ledger is None and current == 0):
        usd = None  # an unpriced run, or a stopped instance with nothing on record
    else:
        usd = (ledger.usd if ledger else 0.0) + (accrued_usd(hourly, current) if current and hourly else 0.0)
    return Accrual(usd, base_seconds + current, current, basis)


_REASON_TIME = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) GMT\)")


def stop_time_from_reason(state_transition_reason: str | None) -> datetime | None:
    """EC2's ``StateTransitionReason`` ("User initiated (2024-05-01 10:00:00 GMT)") → the stop time."""
    m = _REASON_TIME.search(state_transition_reason or "")
    if not m:
        return None
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def uptime_seconds(launch_time: datetime | None, now: datetime, *, running: bool = True) -> int:
    """Whole seconds since the last start (0 when not running)."""
    if launch_time is None or not running:
        return 0
    return max(0, math.floor((_aware(now) - _aware(launch_time)).total_seconds()))
