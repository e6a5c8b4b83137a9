"""The sandbox's shared state: its folder, the moto lock, clock, faults, delays, instance metadata."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clock import SandboxClock
from .faults import FaultInjector


@dataclass
class Delays:
    """Seconds of real time each transition takes (AWS takes tens of seconds; tests want little)."""

    pending: float = 0.3  # pending → running
    stopping: float = 0.3  # stopping → stopped, shutting-down → terminated
    ssm_online: float = 0.5  # running → SSM agent Online
    kill_grace: float = 1.0  # SIGTERM → SIGKILL for an instance's processes
    invocation_lag: float = 0.1  # SendCommand → GetCommandInvocation knows it (InvocationDoesNotExist before)
    ssm_delivery: float = 0.0  # SendCommand → the agent starts the command (Pending meanwhile)

    def update(self, changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise ValueError(f"unknown delay {name!r} (known: {', '.join(self.__dataclass_fields__)})")
            if float(value) < 0:
                raise ValueError(f"delay {name} must be >= 0")
            setattr(self, name, float(value))

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class InstanceMeta:
    """What the sandbox knows about an instance beyond moto's model."""

    iid: str
    region: str
    spot: bool = False
    spot_type: str = "one-time"  # one-time | persistent
    interruption_behavior: str = "terminate"  # terminate | stop | hibernate
    generation: int = 0  # bumped on every transition; stale timers compare and give up
    running_since: float | None = None  # time.monotonic() when it last became running
    notice: dict[str, str] | None = None  # the posted spot interruption (IMDS instance-action)
    tokens: dict[str, float] = field(default_factory=dict)  # IMDSv2 token -> monotonic expiry

    def ssm_online(self, delays: Delays) -> bool:
        return self.running_since is not None and time.monotonic() >= self.running_since + delays.ssm_online


class World:
    def __init__(self, root: Path, port: int = 0) -> None:
        self.root = root.resolve()
        self.port = port
        self.moto_lock = threading.RLock()  # moto is not thread-safe: every touch of it holds this
        self.meta_lock = threading.RLock()
        self.clock = SandboxClock()
        self.faults = FaultInjector()
        self.delays = Delays()
        self.meta: dict[str, InstanceMeta] = {}
        self.started = time.monotonic()
        self.shutdown_requested = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def instances_dir(self) -> Path:
        return self.root / "instances"

    def instance_dir(self, iid: str) -> Path:
        return self.instances_dir / iid

    @property
    def snapshots_dir(self) -> Path:
        """What each EBS snapshot holds: ``<snap-id>/runctl/``, its disk's runctl tree when it was taken."""
        return self.root / "snapshots"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def ssm_dir(self) -> Path:
        return self.root / "ssm"

    def meta_for(self, iid: str, region: str = "us-east-1") -> InstanceMeta:
        with self.meta_lock:
            meta = self.meta.get(iid)
            if meta is None:
                meta = self.meta[iid] = InstanceMeta(iid=iid, region=region)
            return meta
