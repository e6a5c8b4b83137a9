"""Following a fleet run: node 0's log (or every node's, each line prefixed ``[node i]``), and a
watch over every node — the first node to fail (or to be stopped, lost, or to lose its instance)
ends the run on the others, as ``stop`` ends a training (SIGTERM, time to checkpoint, then the
process group), and the result names that node.

The watch is this follower: each poll sends one status command to every node still running (one
SendCommand for all of them) plus one log read per shown node. It acts while runctl follows the run
(``fleet train --wait``, ``fleet monitor --follow``); unattended, a torch.distributed job ends itself
when a peer is gone (its collectives fail), and the next ``fleet monitor`` shows which node ended first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import guardian, logs
from ..aws import ec2, ssm
from ..aws.session import Context
from ..errors import BackendError
from ..remote.replies import StatusReply
from ..training import tail_fetcher
from ..training.runs import tag_run
from .commands import NodesUnreachable, run_all
from .members import Echo, _quiet
from .train import FleetLaunch, end_runs

TAIL_LINES = 20


@dataclass
class NodeRun:
    """One node's part of a fleet run, as the watch last saw it."""

    node: int
    instance_id: str
    state: str = "running"            # running | exited | gone (its instance stopped or terminated)
    exit_code: int | None = None
    stopped: bool = False             # sent SIGTERM (stop, the guardian, runctl ending the run)
    lost: bool = False                # gone without an exit code
    ended: datetime | None = None     # when its wrapper recorded the end
    instance_state: str = "running"
    seen_at: int = 0                  # the poll that first saw it end
    log_size: int = 0

    @property
    def outcome(self) -> str:
        if self.state == "running":
            return "running"
        if self.state == "gone":
            return f"instance {self.instance_state}"
        if self.lost:
            return "lost"
        if self.stopped:
            return "stopped"
        return "succeeded" if self.exit_code == 0 else "failed"

    def said(self) -> str:
        code = f" (exit code {self.exit_code})" if self.exit_code is not None and self.state == "exited" else ""
        return f"node {self.node} ({self.instance_id}) {self.outcome}{code}"


@dataclass
class FleetResult:
    """How a fleet run ended (or where following it stopped)."""

    fleet: str
    project: str
    run_id: str
    state: str                        # succeeded | failed | stopped | detached
    nodes: list[NodeRun]
    first_failure: int | None = None  # the node that ended the run for the others
    ended_by_runctl: list[int] = field(default_factory=list)  # (the others' guardians may have been first)
    log_tail: str = ""                # the last lines followed (node 0's, or every node's)
    failed_tail: str = ""             # the last lines of the node that failed first

    @property
    def exit_code(self) -> int | None:
        return self.nodes[self.first_failure].exit_code if self.first_failure is not None else 0

    @property
    def stopped_after(self) -> list[int]:
        """The nodes whose run was stopped (SIGTERM: each checkpoints) after the first failure: by
        runctl following the run, or by their own guardian, whichever saw it first."""
        if self.first_failure is None:
            return []
        return [n.node for n in self.nodes if n.outcome == "stopped" and n.node != self.first_failure]

    def ended_text(self) -> str:
        """``; then the run was stopped on node 0, node 1`` (or nothing)."""
        nodes = ", ".join(f"node {i}" for i in self.stopped_after)
        return f"; then the run was stopped on {nodes}" if nodes else ""

    def summary(self) -> str:
        text = f"Fleet run {self.run_id} on {self.fleet}: {self.state}"
        if self.first_failure is not None:
            text += f"; {self.nodes[self.first_failure].said()} first{self.ended_text()}"
        return text + "\n" + "\n".join(f"  {n.said()}" for n in self.nodes)

    to_shell_text = summary

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.summary())


class Prefixer:
    """Whole lines of one node's log, each starting ``[node i] `` (a partial line waits for its end)."""

    def __init__(self, node: int) -> None:
        self.prefix = f"[node {node}] "
        self.partial = ""

    def feed(self, text: str) -> str:
        data = self.partial + text
        lines = data.split("\n")
        self.partial = lines.pop()
        return "".join(f"{self.prefix}{line}\n" for line in lines)

    def flush(self) -> str:
        rest, self.partial = self.partial, ""
        return f"{self.prefix}{rest}\n" if rest else ""


def apply_status(run: NodeRun, status: StatusReply, poll: int) -> None:
    """Update one node's run from status.sh's reply (its wrapper's record)."""
    run.log_size = status.log_size
    if status.state != "exited" or run.state != "running":
        return
    run.state, run.seen_at = "exited", poll
    run.exit_code, run.stopped, run.lost, run.ended = status.exit_code, status.stopped, status.lost, status.ended


def _first_end(ctx: Context, fl: FleetLaunch, runs: list[NodeRun]) -> NodeRun | None:
    """The node whose end (other than success) ended the run, once it is seen; None while none is.
    The nodes' guardians say in S3 which node's end started it (the others' guardians may stop their
    nodes within the same second); a node said there but still running is waited for. Without that,
    the first seen, and in the same poll a failure before a stop."""
    ended = [r for r in runs if r.state != "running" and r.outcome != "succeeded"]
    if not ended:
        return None
    said = guardian.fleet_ends(ctx, fl.project, fl.run_id)
    origins = [r for r in ended if r.node in said]
    if said and not origins and any(r.node in said and r.state == "running" for r in runs):
        return None
    return min(origins or ended, key=lambda r: (r.seen_at, r.outcome == "stopped", r.ended is None,
                                                r.ended.timestamp() if r.ended else 0.0, r.node))


def _poll_statuses(ctx: Context, fl: FleetLaunch, runs: list[NodeRun], poll: int) -> None:
    """One status command for every node still running; nodes that cannot take commands are asked EC2."""
    live = [r for r in runs if r.state == "running"]
    if not live:
        return
    try:
        replies = run_all(ctx, [r.instance_id for r in live], "status", [fl.project, fl.run_id],
                          ssm.remote_root_env(ctx))
    except NodesUnreachable:
        for run in live:
            state = ec2.describe(ctx, run.instance_id).state
            if state not in ("pending", "running"):
                run.state, run.instance_state, run.seen_at = "gone", state, poll
        if any(r.state == "gone" for r in live):
            _poll_statuses(ctx, fl, runs, poll)
            return
        raise
    for run in live:
        result = replies[run.instance_id]
        if result.exit_code != 0:
            raise BackendError(f"Could not read the run status on node {run.node} ({run.instance_id}): "
                               f"{(result.stderr or result.status).strip()[:200]}", [])
        apply_status(run, StatusReply.parse(result.stdout), poll)


def follow_fleet(ctx: Context, fl: FleetLaunch, on_text: Callable[[str], Any], *, all_nodes: bool = False,
                 should_stop: Callable[[], bool] | None = None, start_offsets: list[int] | None = None,
                 from_line_start: bool = False, echo: Echo = _quiet) -> FleetResult:
    """Stream the shown nodes' logs to ``on_text`` and watch every node until the run has ended on all
    of them (and the shown logs are read to the end), or ``should_stop()``."""
    runs = [NodeRun(i, launch.instance_id) for i, launch in enumerate(fl.launches)]
    shown = list(range(len(runs))) if all_nodes else [0]
    offsets = start_offsets or [0] * len(runs)
    followers = {i: logs.LogFollower(offsets[i], from_line_start=from_line_start) for i in shown}
    fetchers = {i: tail_fetcher(ctx, fl.launches[i].instance_id, fl.launches[i].log_path) for i in shown}
    prefixers = {i: Prefixer(i) for i in shown} if all_nodes else {}
    tail: list[str] = []
    first: NodeRun | None = None
    ended_by_runctl: list[int] = []

    def emit(node: int, text: str) -> None:
        if not text:
            return
        out = prefixers[node].feed(text) if all_nodes else text
        if out:
            tail.append(out)
            on_text(out)

    def read(node: int) -> str:
        """What the node's log holds beyond the follower's offset now (several reads when far behind)."""
        pieces: list[str] = []
        follower = followers[node]
        while True:
            try:
                chunk = logs.decode_chunk(fetchers[node](follower.offset, logs.MAX_CHUNK_BYTES))
            except BackendError:
                if runs[node].state == "gone":
                    follower.exit_code = follower.exit_code if follower.exit_code is not None else -1
                    follower.size = follower.offset
                    return "".join(pieces)
                raise
            before = follower.offset
            pieces.append(follower.feed(chunk))
            if follower.offset <= before or follower.offset >= follower.size:
                if follower.done:
                    pieces.append(follower.finish())
                return "".join(pieces)

    poll = 0
    with ThreadPoolExecutor(max_workers=min(16, len(shown))) as pool:
        while True:
            if should_stop is not None and should_stop():
                return _result(fl, runs, "detached", first, ended_by_runctl, tail)
            poll += 1
            _poll_statuses(ctx, fl, runs, poll)
            readable = [i for i in shown if not followers[i].done]
            for node, text in zip(readable, pool.map(read, readable), strict=True):
                emit(node, text)
            if first is None:
                first = _first_end(ctx, fl, runs)
                if first is not None:
                    others = [r for r in runs if r.state == "running"]
                    if others:
                        echo(f"{first.said()} first: ending the run on {', '.join(f'node {r.node}' for r in others)} "
                             "(SIGTERM: each checkpoints, then stops)")
                        end_runs(ctx, [r.instance_id for r in others], fl.project, fl.run_id,
                                 ctx.settings.stop_wait_seconds)
                        ended_by_runctl = [r.node for r in others]
            if all(r.state != "running" for r in runs) and all(followers[i].done for i in shown):
                break
            time.sleep(ctx.pacing.log_poll)
    for node in shown:
        if all_nodes:
            emit(node, prefixers[node].flush())
    for run in runs:
        if run.state == "exited":
            tag_run(ctx, run.instance_id, fl.run_id, "stopped" if run.stopped else f"exit {run.exit_code}")
    # a node told to stop (stop, its guardian on a spot notice) or whose instance went away ended the run
    # on purpose or by AWS; an exit code or a lost process is a failure
    state = "succeeded" if first is None else "stopped" if first.outcome == "stopped" or first.state == "gone" \
        else "failed"
    result = _result(fl, runs, state, first, ended_by_runctl, tail)
    if first is not None and first.state == "exited":
        result.failed_tail = _last_lines(ctx, fl, first)
    return result


def _last_lines(ctx: Context, fl: FleetLaunch, run: NodeRun) -> str:
    """The last lines of one node's log (one read of its last few KB)."""
    launch = fl.launches[run.node]
    try:
        stdout = tail_fetcher(ctx, launch.instance_id, launch.log_path)(max(0, run.log_size - 4096), 4096)
    except BackendError:
        return ""
    text = logs.decode_chunk(stdout).data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-TAIL_LINES // 2:])


def _result(fl: FleetLaunch, runs: list[NodeRun], state: str, first: NodeRun | None, ended_by_runctl: list[int],
            tail: list[str]) -> FleetResult:
    lines = "".join(tail).splitlines()[-TAIL_LINES:]
    return FleetResult(fl.fleet, fl.project, fl.run_id, state, runs, None if first is None else first.node,
                       ended_by_runctl, "\n".join(lines))
