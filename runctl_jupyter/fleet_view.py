"""The ``fleet`` commands as a front end shows them: node 0's log streamed into the cell (or a shell),
every node's with ``--all-nodes`` (lines prefixed ``[node i]``), with the watch that ends the run on
every node when one fails. Front-end code: it reaches the fleet only through :mod:`runctl_jupyter.api`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import api
from .follow_view import _LIVE_VIEWS, REATTACH_CONTEXT_BYTES, BackgroundFollower, _Progress

if TYPE_CHECKING:
    from .dispatch import Frontend
    from .grammar import Command


def _ctx(c: Command, fe: Frontend) -> api.Context:
    flags = {k: getattr(c.options, k, None) for k in ("region", "profile", "project", "bucket")}
    return api.context(flags=flags, magic=fe.magic_config)


def _write_out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def follow_here(ctx: api.Context, launch: api.FleetLaunch, fe: Frontend, *, all_nodes: bool,
                start_offsets: list[int] | None = None, from_line_start: bool = False,
                write: Callable[[str], Any] = _write_out) -> api.FleetResult:
    """Stream the run here until it ended on every node; Ctrl-C detaches (the run goes on)."""
    progress = _Progress(fe.notebook, desc=f"fleet {launch.fleet}") if not all_nodes else None
    if progress is not None:
        progress.hint = (f"Re-attach with `{fe.prefix} fleet monitor {launch.fleet} --follow`, "
                         f"stop it with `{fe.prefix} fleet stop {launch.fleet}`.")
    last = [""]

    def on_text(text: str) -> None:
        last[0] = text
        write(text)
        if progress is not None:
            progress.feed(text)

    def note(line: str) -> None:  # on a line of its own, in the log's stream
        write(("\n" if last[0] and not last[0].endswith("\n") else "") + f"[runctl] {line}\n")
        last[0] = "\n"

    try:
        result = api.fleet_follow(ctx, launch, on_text, all_nodes=all_nodes, start_offsets=start_offsets,
                                  from_line_start=from_line_start, echo=note)
    except KeyboardInterrupt:
        write(f"\nDetached from fleet run {launch.run_id}; it goes on, unwatched (runctl ends it on every node when "
              f"one fails only while it follows it). Re-attach with `{fe.prefix} fleet monitor {launch.fleet} "
              f"--follow`, stop it with `{fe.prefix} fleet stop {launch.fleet}`.\n")
        if progress is not None:
            progress.close("detached (the run goes on)")
        return api.FleetResult(launch.fleet, launch.project, launch.run_id, "detached", [])
    except BaseException:
        if progress is not None:
            progress.close("stopped following")
        raise
    if progress is not None:
        progress.close(result.state)
    return result


def create(c: Command, fe: Frontend) -> api.Fleet:
    return api.fleet_create(_ctx(c, fe), c.fleet, c.instance_type, nodes=c.nodes, spot=c.spot, wait=c.wait,
                            project=c.project, subnet=c.subnet, security_groups=c.security_group or (),
                            echo=fe.echo, ami=c.ami, iam_instance_profile=c.iam_instance_profile, disk_gb=c.disk_gb)


class FleetBackgroundFollower(BackgroundFollower):
    """`fleet train` without --wait in a notebook: node 0's log shown in the cell from a thread, and every
    node watched while this kernel runs (the first node to fail or stop ends the run on the others, as
    when followed in the foreground)."""

    def __init__(self, ctx: api.Context, launch: api.FleetLaunch, reattach: str) -> None:
        self.fleet_ctx, self.fleet_launch = ctx, launch  # (before the thread starts in BackgroundFollower.__init__)
        self.fleet_result: api.FleetResult | None = None
        super().__init__(ctx, launch.launches[0], reattach=reattach)

    def _title(self) -> str:
        return f"fleet run {self.fleet_launch.run_id} on {self.fleet_launch.fleet} (node 0's log)"

    def _running_status(self) -> str:
        return "running (shown and watched here while this kernel runs: a node that fails ends the others)"

    def _run(self) -> None:
        try:
            result = api.fleet_follow(self.fleet_ctx, self.fleet_launch, self._on_text, should_stop=self._should_stop,
                                      echo=lambda line: self.lines.append(f"[runctl] {line}"))
            if self._stop.is_set():
                self.handle.update(self._render("detached (the run goes on, unwatched)"))
                return
            self.fleet_result = result
            self.handle.update(self._render(result.summary().splitlines()[0].partition(": ")[2]))
        except Exception as exc:  # a thread cannot raise into the cell: show it in the display
            message = exc.render("%runctl") if hasattr(exc, "render") else f"{type(exc).__name__}: {exc}"
            self.handle.update(self._render(f"stopped watching: {message}"))
        finally:
            _LIVE_VIEWS.discard(self)

    def kernel_stopping(self, hint: str = "") -> None:
        if self.fleet_result is None:  # (an ended run's display already says how it ended)
            super().kernel_stopping(hint)


_FOLLOWERS: dict[str, FleetBackgroundFollower] = {}  # fleet name -> the cell that watches its newest run


def train(c: Command, fe: Frontend) -> api.FleetLaunch | api.FleetResult:
    ctx = _ctx(c, fe)
    launch = api.fleet_train(ctx, c.fleet, c.script, c.script_args, project=c.project, sync_code=c.sync_code,
                             bucket=c.bucket, project_root=c.project_root, torchrun=c.torchrun,
                             nproc_per_node=c.nproc_per_node, master_port=c.master_port, autostop=c.autostop,
                             max_hours=c.max_hours, max_cost=c.max_cost, echo=fe.echo)
    if not c.wait:
        again = f"{fe.prefix} fleet monitor {c.fleet} --follow{' --all-nodes' if c.all_nodes else ''}"
        if fe.notebook:  # node 0's log in this cell, and the whole fleet watched, while this kernel runs
            previous = _FOLLOWERS.pop(c.fleet, None)
            if previous:
                previous.stop()
            _FOLLOWERS[c.fleet] = FleetBackgroundFollower(ctx, launch, reattach=f"`{again}`")
            return launch
        fe.echo(f"Follow it with: {again} (while followed, a node that fails ends the run on the others)")
        return launch
    result = follow_here(ctx, launch, fe, all_nodes=c.all_nodes)
    if result.state == "failed":
        raise api.fleet_failure(result)
    return result


def monitor(c: Command, fe: Frontend) -> api.FleetResult | None:
    ctx = _ctx(c, fe)
    info = api.fleet_run_info(ctx, c.fleet, c.project, c.run_id)
    if info is None:
        fe.echo(f"[{ctx.world().label()}] No training runs on fleet {c.fleet}.")
        return None
    fe.echo(info.header())
    if c.follow and info.running:
        offsets = [max(0, st.log_size - REATTACH_CONTEXT_BYTES) for st in info.statuses]
        result = follow_here(ctx, info.launch, fe, all_nodes=c.all_nodes, start_offsets=offsets, from_line_start=True)
        if result.state == "failed":
            raise api.fleet_failure(result)
        return result
    for node in range(len(info.statuses)) if c.all_nodes else [0]:
        if info.states[node] != "running":
            continue
        lines = api.fleet_log(ctx, info, node, 0 if c.run_id else None, fe.echo).splitlines()
        lines = lines if c.run_id else lines[-c.lines:]
        prefix = f"[node {node}] " if c.all_nodes else ""
        _write_out("".join(f"{prefix}{line}\n" for line in lines))
    return None


def status(c: Command, fe: Frontend) -> Any:
    return api.fleet_status(_ctx(c, fe), c.fleet)


def stop(c: Command, fe: Frontend) -> None:
    api.fleet_stop(_ctx(c, fe), c.fleet, force=c.force, wait=c.wait, echo=fe.echo)


def terminate(c: Command, fe: Frontend) -> None:
    api.fleet_terminate(_ctx(c, fe), c.fleet, force=c.force, snapshot=c.snapshot, echo=fe.echo)


HANDLERS: dict[tuple[str, ...], Callable[[Command, Frontend], Any]] = {
    ("fleet", "create"): create, ("fleet", "train"): train, ("fleet", "monitor"): monitor,
    ("fleet", "status"): status, ("fleet", "stop"): stop, ("fleet", "terminate"): terminate,
}
