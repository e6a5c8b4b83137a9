"""Helpers for the cost tests: recorded AWS answers and a movable clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 5, 12, 0, 0, tzinfo=UTC)


def recorded(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text("utf-8"))


class Clock:
    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)
