"""Small helpers for the panel tests: bounded polling and fake API calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runctl_jupyter.logs import FollowResult


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def visible(widget: Any) -> bool:
    return widget.layout.display != "none"


@dataclass
class FakeLaunch:
    instance_id: str
    project: str = "demo"
    run_id: str = "20260101T000000Z-abc123"
    pid: int = 4242
    log_path: str = "runctl/demo/runs/x/log"


@dataclass
class FakeInstance:
    instance_id: str
    state: str


@dataclass
class Recorder:
    """Records calls; ``gate`` (when set) makes a call block until released."""

    calls: list[tuple[str, tuple, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str, *args: Any, **kwargs: Any) -> None:
        with self.lock:
            self.calls.append((name, args, kwargs))

    def names(self) -> list[str]:
        with self.lock:
            return [c[0] for c in self.calls]

    def of(self, name: str) -> list[tuple[tuple, dict]]:
        with self.lock:
            return [(a, k) for n, a, k in self.calls if n == name]


def scripted_follow(lines: list[str], exit_code: int | None = 0, *, block: threading.Event | None = None,
                    recorder: Recorder | None = None):
    """A follow_run that emits ``lines`` then (optionally) waits for ``block`` or should_stop."""

    def follow_run(ctx: Any, launch: Any, on_text: Callable[[str], Any], *, should_stop=None, **_kw: Any):
        if recorder is not None:
            recorder.record("follow_run", launch)
        for line in lines:
            on_text(line + "\n")
        if block is not None:
            while not block.is_set():
                if should_stop is not None and should_stop():
                    return FollowResult(None, 0, 1, 0, 0)
                time.sleep(0.01)
        return FollowResult(exit_code, 0, 1, 0, 0)

    return follow_run
