"""EC2 instance lifecycle with AWS's timing and rules, on top of moto's (instant) model.

RunInstances/StartInstances go through pending for ``delays.pending`` seconds, StopInstances through
stopping (the instance's processes are killed; the disk stays), TerminateInstances through
shutting-down (processes killed, disk deleted). LaunchTime is the sandbox clock at RunInstances and
at every StartInstances. A one-time spot instance refuses StopInstances (UnsupportedOperation).
Transitions are serialized by the moto lock; a generation counter makes stale timers harmless.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from . import moto_seams, processes
from .clock import call_later, iso
from .ebs import EbsSnapshots
from .protocol import AwsRequest, RawResponse, ec2_error
from .world import InstanceMeta, World

AnyResponse = Response | RawResponse
Forward = Callable[[dict[str, Any]], AnyResponse]
_ID = re.compile(r"<instanceId>(i-[0-9a-f]+)</instanceId>")
_RUNNING_STATE = re.compile(r"<instanceState>\s*<code>16</code>\s*<name>running</name>\s*</instanceState>")
_LAUNCH_TIME = re.compile(r"<launchTime>[^<]*</launchTime>")


class Lifecycle:
    def __init__(self, world: World, forward: Forward) -> None:
        self.world = world
        self.forward = forward
        self.actions = {"RunInstances": self.run_instances, "StartInstances": self.start_instances,
                        "StopInstances": self.stop_instances, "TerminateInstances": self.terminate_instances}
        self.ebs = EbsSnapshots(world, forward)  # snapshots hold the disk they saved
        self.actions.update(self.ebs.actions)

    def handle(self, req: AwsRequest, environ: dict[str, Any]) -> AnyResponse | None:
        handler = self.actions.get(req.action or "")
        return handler(req, environ) if handler else None

    # --- helpers ---------------------------------------------------------------------------------

    def _meta(self, inst: Any) -> InstanceMeta:
        return self.world.meta_for(inst.id, moto_seams.region_of(inst))

    def _after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        call_later(delay, fn, *args, name="sandbox-lifecycle")

    def _in_background(self, fn: Callable[..., None], *args: Any) -> None:
        threading.Thread(target=fn, args=args, daemon=True).start()

    def _lookup(self, req: AwsRequest) -> dict[str, Any] | None:
        """Instances named by the request, or None if any is unknown (moto then answers the error)."""
        found = {}
        for iid in req.param_list("InstanceId"):
            inst = moto_seams.find_instance(iid, req.region)
            if inst is None or moto_seams.region_of(inst) != req.region:
                return None
            found[iid] = inst
        return found

    # --- transitions (caller holds the moto lock) ------------------------------------------------

    def begin_pending(self, inst: Any) -> None:
        meta = self._meta(inst)
        meta.generation += 1
        meta.running_since = None
        moto_seams.set_state(inst, "pending")
        moto_seams.set_launch_time(inst, self.world.clock.now())
        self.world.instance_dir(inst.id).mkdir(parents=True, exist_ok=True)
        self._after(self.world.delays.pending, self._finish_pending, inst, meta.generation)

    def _finish_pending(self, inst: Any, generation: int) -> None:
        with self.world.moto_lock:
            meta = self._meta(inst)
            if meta.generation == generation and moto_seams.state(inst) == "pending":
                moto_seams.set_state(inst, "running")
                meta.running_since = time.monotonic()

    def begin_stopping(self, inst: Any) -> None:
        meta = self._meta(inst)
        meta.generation += 1
        meta.running_since = None
        moto_seams.set_state(inst, "stopping")
        self._in_background(self._finish_stopping, inst, meta.generation, time.monotonic())

    def _finish_stopping(self, inst: Any, generation: int, began: float) -> None:
        processes.kill_all(self.world.root, inst.id, self.world.delays.kill_grace)
        time.sleep(max(0.0, began + self.world.delays.stopping - time.monotonic()))
        with self.world.moto_lock:
            if self._meta(inst).generation == generation and moto_seams.state(inst) == "stopping":
                moto_seams.set_state(inst, "stopped")

    def begin_terminating(self, inst: Any) -> None:
        meta = self._meta(inst)
        meta.generation += 1
        meta.running_since = None
        moto_seams.set_state(inst, "shutting-down")
        self._in_background(self._finish_terminating, inst, meta.generation, time.monotonic())

    def _finish_terminating(self, inst: Any, generation: int, began: float) -> None:
        processes.kill_all(self.world.root, inst.id, self.world.delays.kill_grace)
        shutil.rmtree(self.world.instance_dir(inst.id), ignore_errors=True)
        time.sleep(max(0.0, began + self.world.delays.stopping - time.monotonic()))
        with self.world.moto_lock:
            if self._meta(inst).generation == generation and moto_seams.state(inst) == "shutting-down":
                moto_seams.set_state(inst, "terminated")

    # --- actions ---------------------------------------------------------------------------------

    def run_instances(self, req: AwsRequest, environ: dict[str, Any]) -> AnyResponse:
        p = req.params
        spot = p.get("InstanceMarketOptions.MarketType", "").lower() == "spot"
        restores: list[tuple[str, str]] = []
        with self.world.moto_lock:
            resp = self.forward(environ)
            if resp.status_code != 200:
                return resp
            text = resp.get_data(as_text=True)
            now = self.world.clock.now()
            for iid in dict.fromkeys(_ID.findall(text)):
                inst = moto_seams.find_instance(iid, req.region)
                if inst is None:
                    continue
                meta = self._meta(inst)
                meta.spot = spot or inst.lifecycle == "spot"
                if meta.spot:
                    inst.lifecycle = "spot"
                    meta.spot_type = p.get("InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time")
                    meta.interruption_behavior = p.get(
                        "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior", "terminate")
                self.begin_pending(inst)
                restores += self.ebs.restores_for(inst)
            text = _RUNNING_STATE.sub("<instanceState><code>0</code><name>pending</name></instanceState>", text)
            text = _LAUNCH_TIME.sub(f"<launchTime>{iso(now)}</launchTime>", text)
            resp.set_data(text)
        self.ebs.restore(restores)  # its disk holds them before anyone hears of the instance
        return resp

    def start_instances(self, req: AwsRequest, environ: dict[str, Any]) -> AnyResponse:
        with self.world.moto_lock:
            found = self._lookup(req)
            if found is None or req.params.get("DryRun") == "true":
                return self.forward(environ)
            before = {iid: moto_seams.state(inst) for iid, inst in found.items()}
            for iid, state in before.items():
                if state in ("stopping", "shutting-down", "terminated"):
                    return ec2_error("IncorrectInstanceState",
                                     f"The instance '{iid}' is not in a state from which it can be started.")
            resp = self.forward(environ)
            if resp.status_code == 200:
                for iid, inst in found.items():
                    if before[iid] == "stopped":
                        self.begin_pending(inst)
                    elif before[iid] == "pending":
                        moto_seams.set_state(inst, "pending")
            return resp

    def stop_instances(self, req: AwsRequest, environ: dict[str, Any]) -> AnyResponse:
        with self.world.moto_lock:
            found = self._lookup(req)
            if found is None:
                return self.forward(environ)
            before = {iid: moto_seams.state(inst) for iid, inst in found.items()}
            for iid, inst in found.items():
                meta = self._meta(inst)
                if (meta.spot or inst.lifecycle == "spot") and meta.spot_type != "persistent":
                    return ec2_error("UnsupportedOperation",
                                     f"You can't stop the Spot Instance '{iid}' because it is associated with a "
                                     "one-time Spot Instance request. You can only stop Spot Instances "
                                     "associated with persistent Spot Instance requests.")
                if before[iid] in ("pending", "shutting-down", "terminated"):
                    return ec2_error("IncorrectInstanceState",
                                     f"This instance '{iid}' is not in a state from which it can be stopped.")
            if req.params.get("DryRun") == "true":
                return self.forward(environ)
            resp = self.forward(environ)
            if resp.status_code == 200:
                for iid, inst in found.items():
                    if before[iid] == "running":
                        self.begin_stopping(inst)
                    elif before[iid] in ("stopping", "stopped"):
                        moto_seams.set_state(inst, before[iid])
            return resp

    def terminate_instances(self, req: AwsRequest, environ: dict[str, Any]) -> AnyResponse:
        with self.world.moto_lock:
            found = self._lookup(req)
            if found is None or req.params.get("DryRun") == "true":
                return self.forward(environ)
            before = {iid: moto_seams.state(inst) for iid, inst in found.items()}
            resp = self.forward(environ)
            if resp.status_code == 200:
                for iid, inst in found.items():
                    if before[iid] in ("shutting-down", "terminated"):
                        moto_seams.set_state(inst, before[iid])
                    else:
                        self.begin_terminating(inst)
            return resp

    # --- sandbox-initiated (interruption) ----------------------------------------------------------

    def reclaim(self, iid: str) -> str:
        """AWS takes a spot instance back: stop it (persistent, behaviour stop) or terminate it."""
        with self.world.moto_lock:
            inst = moto_seams.find_instance(iid)
            if inst is None:
                return "unknown"
            meta = self._meta(inst)
            state = moto_seams.state(inst)
            if state in ("shutting-down", "terminated"):
                return state
            if meta.spot_type == "persistent" and meta.interruption_behavior in ("stop", "hibernate"):
                if state in ("running", "pending"):
                    moto_seams.stop(inst)
                    self.begin_stopping(inst)
                return "stopping"
            moto_seams.terminate(inst)
            self.begin_terminating(inst)
            return "shutting-down"
