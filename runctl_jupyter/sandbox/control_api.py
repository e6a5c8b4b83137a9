"""The /_runctl/… control API (HTTP JSON, never fault-injected)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from werkzeug.wrappers import Request, Response

from . import gpus, moto_seams, snapshot
from .clock import call_later, iso, parse_instant
from .lifecycle import Lifecycle
from .world import World


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _ok(payload: Any) -> Response:
    return Response(json.dumps(payload, default=str), content_type="application/json")


class ControlApi:
    def __init__(self, world: World, lifecycle: Lifecycle, on_shutdown: Callable[[], None]) -> None:
        self.world = world
        self.lifecycle = lifecycle
        self.on_shutdown = on_shutdown
        self.routes: dict[str, Callable[[str, dict[str, Any]], Any]] = {
            "health": self.health, "clock": self.clock, "age": self.age, "interrupt": self.interrupt,
            "faults": self.faults, "delays": self.delays, "snapshot": self.snapshot, "gpus": self.gpus,
            "shutdown": self.shutdown,
        }

    def handle(self, environ: dict[str, Any]) -> Response:
        request = Request(environ)
        name = request.path.removeprefix("/_runctl/").strip("/")
        route = self.routes.get(name)
        if route is None:
            return Response(json.dumps({"error": f"unknown control call {name!r}"}), status=404,
                            content_type="application/json")
        try:
            body = json.loads(request.get_data() or b"{}") if request.method == "POST" else {}
            if not isinstance(body, dict):
                raise ControlError("the request body must be a JSON object")
            return _ok(route(request.method, body))
        except ControlError as exc:
            return Response(json.dumps({"error": str(exc)}), status=exc.status, content_type="application/json")
        except (ValueError, TypeError, KeyError) as exc:
            return Response(json.dumps({"error": f"bad request: {exc}"}), status=400,
                            content_type="application/json")

    # --- routes ----------------------------------------------------------------------------------

    def health(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "dir": str(self.world.root), "endpoint": self.world.endpoint,
                "clock": self.world.clock.state()["now"]}

    def clock(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        clock = self.world.clock
        if "freeze" in body:
            clock.freeze(parse_instant(body["freeze"]) if body["freeze"] else None)
        if body.get("advance_seconds"):
            clock.advance(float(body["advance_seconds"]))
        if body.get("unfreeze"):
            clock.unfreeze(reset=bool(body.get("reset")))
        return clock.state()

    def _instance(self, body: dict[str, Any]) -> Any:
        iid = body.get("instance_id") or body.get("iid")
        if not iid:
            raise ControlError("instance_id is required")
        inst = moto_seams.find_instance(str(iid))
        if inst is None:
            raise ControlError(f"no instance {iid} in the sandbox", 404)
        return inst

    def age(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        hours = float(body["hours"])
        with self.world.moto_lock:
            inst = self._instance(body)
            moment = moto_seams.launch_time(inst) - timedelta(hours=hours)
            moto_seams.set_launch_time(inst, moment)
            return {"instance_id": inst.id, "launch_time": iso(moment)}

    def interrupt(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        notice = float(body.get("notice_seconds", 120))
        after = float(body.get("terminate_after_seconds", notice))
        with self.world.moto_lock:
            inst = self._instance(body)
            state = moto_seams.state(inst)
            if state not in ("running", "pending"):
                raise ControlError(f"instance {inst.id} is {state}; only a running instance can be interrupted",
                                   409)
            meta = self.world.meta_for(inst.id, moto_seams.region_of(inst))
            persistent_stop = meta.spot_type == "persistent" and meta.interruption_behavior in ("stop",
                                                                                                 "hibernate")
            action = meta.interruption_behavior if persistent_stop else "terminate"
            meta.notice = {"action": action, "time": iso(self.world.clock.now() + timedelta(seconds=notice))}
            iid = inst.id
        call_later(after, self.lifecycle.reclaim, iid, name="sandbox-spot-reclaim")
        return {"instance_id": iid, "notice": meta.notice, "reclaim_in_seconds": after}

    def faults(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "POST":
            try:
                return self.world.faults.configure(**body)
            except ValueError as exc:
                raise ControlError(str(exc)) from exc
        return self.world.faults.state()

    def delays(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "POST":
            try:
                self.world.delays.update(body)
            except ValueError as exc:
                raise ControlError(str(exc)) from exc
        return self.world.delays.as_dict()

    def gpus(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """What a GPU instance's nvidia-smi reports: POST {instance_id, utilization=…, memory_used_mib=…,
        memory_utilization=…, temperature=…, power_watts=…} (a number for every GPU, or a list)."""
        values = {k: v for k, v in body.items() if k not in ("instance_id", "iid")}
        with self.world.moto_lock:
            inst = self._instance(body)
            try:
                if method == "POST" and values:
                    return gpus.set_metrics(self.world, inst.id, inst.instance_type, values)
                path = gpus.prepare(self.world, inst.id, inst.instance_type)
            except LookupError as exc:
                raise ControlError(str(exc), 409) from exc
            except ValueError as exc:
                raise ControlError(str(exc)) from exc
            if path is None:
                raise ControlError(f"{inst.id} is a {inst.instance_type}: it has no NVIDIA GPU", 409)
            return dict(json.loads(path.read_text()))

    def snapshot(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        return snapshot.take(self.world)

    def shutdown(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method != "POST":
            raise ControlError("shutdown needs POST", 405)
        threading.Thread(target=self.on_shutdown, daemon=True).start()
        return {"ok": True, "stopping": os.getpid()}
