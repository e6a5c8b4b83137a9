"""Seeded fault injection for signed AWS API calls: throttling, latency, dropped calls.

Never applied to the control API (/_runctl), IMDS (/_imds) or presigned S3 URLs — the app only asks
this module about requests that carry a SigV4 ``Authorization`` header.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = ("throttle", "drop", "latency")


@dataclass
class Decision:
    latency_s: float = 0.0
    kind: str | None = None  # "throttle" | "drop" | None


@dataclass
class FaultSettings:
    throttle: float = 0.0
    drop: float = 0.0
    latency_ms: float = 0.0
    seed: int | None = None
    services: list[str] | None = None  # None: every service


@dataclass
class FaultInjector:
    settings: FaultSettings = field(default_factory=FaultSettings)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    _rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Update settings (unknown keys raise ValueError); a new seed (or ``reset``) restarts counting."""
        unknown = set(changes) - {"throttle", "drop", "latency_ms", "seed", "services", "reset"}
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        with self._lock:
            for name in ("throttle", "drop"):
                if name in changes:
                    value = float(changes[name] or 0.0)
                    if not 0.0 <= value <= 1.0:
                        raise ValueError(f"{name} must be a fraction between 0 and 1")
                    setattr(self.settings, name, value)
            if "latency_ms" in changes:
                self.settings.latency_ms = max(0.0, float(changes["latency_ms"] or 0.0))
            if "services" in changes:
                services = changes["services"]
                self.settings.services = [str(s).lower() for s in services] if services else None
            if "seed" in changes or changes.get("reset"):
                self.settings.seed = changes.get("seed", self.settings.seed)
                self._rng = random.Random(self.settings.seed)
                self.counters = dict.fromkeys(KINDS, 0)
        return self.state()

    def state(self) -> dict[str, Any]:
        with self._lock:
            s = self.settings
            return {"throttle": s.throttle, "drop": s.drop, "latency_ms": s.latency_ms, "seed": s.seed,
                    "services": s.services, "counters": dict(self.counters)}

    def decide(self, service: str | None) -> Decision:
        with self._lock:
            s = self.settings
            if s.services is not None and (service or "") not in s.services:
                return Decision()
            decision = Decision()
            if s.latency_ms > 0:
                decision.latency_s = s.latency_ms / 1000.0
                self.counters["latency"] += 1
            if s.throttle > 0 and self._rng.random() < s.throttle:
                decision.kind = "throttle"
            elif s.drop > 0 and self._rng.random() < s.drop:
                decision.kind = "drop"
            if decision.kind:
                self.counters[decision.kind] += 1
            return decision
