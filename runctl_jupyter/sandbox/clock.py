"""The sandbox clock: real time by default; can be frozen at an instant and moved.

Everything the sandbox stamps (LaunchTime, spot price timestamps, SSM dates) reads this clock.
Delays (pending→running etc.) use real monotonic time, so a frozen clock never stalls the world.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def call_later(delay: float, fn: Callable[..., object], *args: object, name: str = "sandbox-timer") -> None:
    """Run ``fn(*args)`` on a daemon thread after ``delay`` seconds of real time.

    Not :class:`threading.Timer`: its timed lock wait never returns under a shifted clock
    (``faketime -f '+400d'``: libfaketime fakes CLOCK_MONOTONIC but not the ``sem_clockwait`` that
    CPython's timed lock waits use), and the sandbox must work on any date. ``time.sleep`` does.
    """
    def wait_then_call() -> None:
        time.sleep(max(0.0, delay))
        fn(*args)

    threading.Thread(target=wait_then_call, name=name, daemon=True).start()


def parse_instant(value: str) -> datetime:
    """An ISO-8601 instant (``Z`` accepted); naive values are taken as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """``2026-01-02T03:04:05.678Z`` (milliseconds, UTC) as AWS prints instants."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SandboxClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frozen: datetime | None = None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC) + self._offset

    def freeze(self, at: datetime | None = None) -> None:
        """Stop the clock at ``at`` (default: the current sandbox time)."""
        moment = at if at is not None else self.now()
        with self._lock:
            self._frozen = moment.astimezone(UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock; a move past what a datetime holds is a ValueError (the control API's 400)."""
        try:
            step = timedelta(seconds=seconds)
            (self.now() + step).isoformat()
        except OverflowError as exc:
            raise ValueError(f"cannot move the clock by {seconds!r} s: {exc}") from exc
        with self._lock:
            if self._frozen is not None:
                self._frozen += step
            else:
                self._offset += step

    def unfreeze(self, reset: bool = False) -> None:
        """Let time flow again, from the frozen instant on (or from real time with ``reset``)."""
        with self._lock:
            if reset:
                self._offset = timedelta(0)
            elif self._frozen is not None:
                self._offset = self._frozen - datetime.now(UTC)
            self._frozen = None

    def state(self) -> dict[str, object]:
        now = self.now()
        with self._lock:
            return {"now": iso(now), "frozen": self._frozen is not None,
                    "offset_seconds": self._offset.total_seconds()}
