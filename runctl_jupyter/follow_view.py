"""Showing a run as it goes: the log streamed into a cell (or a shell) with a tqdm.auto progress bar,
or a display in the cell kept up to date from a thread while the cell returns. Front-end code: it
reads the run through :mod:`runctl_jupyter.api` and is the only place that draws a run's progress.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import api

if TYPE_CHECKING:
    from .dispatch import Frontend
    from .grammar import Command

LOG_TAIL_LINES = 20


def tail_lines(text: str, n: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-n:])


class _Progress:
    """tqdm.auto progress driven by the script's epoch lines."""

    def __init__(self) -> None:
        self.parser = api.ProgressParser()
        self.bar: Any = None  # a tqdm.auto bar, made at the first progress line

    def feed(self, text: str) -> None:
        for progress in self.parser.feed(text):
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=progress.total, unit=progress.kind, desc="training")
            if self.bar.total != progress.total:
                self.bar.total = progress.total
            self.bar.n = progress.current
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def wait_in_foreground(ctx: api.Context | None, launch: api.Launch, write: Callable[[str], Any], *,
                       start_offset: int = 0, from_line_start: bool = False,
                       fetch: api.Fetch | None = None, prefix: str = "runctl",
                       detach_hint: str | None = None) -> api.TrainResult:
    """Stream the log to ``write`` with a progress bar until the run ends; Ctrl-C detaches.

    ``prefix`` ("%runctl" in a notebook) goes into the re-attach hint; ``detach_hint`` replaces it
    (a local run is followed with ``tail -f``, not a runctl command)."""
    progress = _Progress()
    collected: list[str] = []

    def on_text(text: str) -> None:
        collected.append(text)
        write(text)
        progress.feed(text)

    def note(line: str) -> None:  # on a line of its own
        write(("\n" if collected and not collected[-1].endswith("\n") else "") + f"[runctl] {line}\n")

    try:
        result = api.follow_run(ctx, launch, on_text, start_offset=start_offset, from_line_start=from_line_start,
                            fetch=fetch, echo=note)
    except api.InstanceEnded as ended:
        write(f"\n[runctl] {ended.message}\n")
        return api.TrainResult(launch.instance_id, launch.project, launch.run_id, "stopped", None,
                           tail_lines("".join(collected)), launch.python)
    except KeyboardInterrupt:
        progress.close()
        hint = detach_hint or (f"Re-attach with `{prefix} aws monitor {launch.instance_id} --follow`, "
                               f"stop it with `{prefix} aws stop {launch.instance_id}`.")
        write(f"\nDetached from run {launch.run_id}; it goes on. {hint}\n")
        return api.TrainResult(launch.instance_id, launch.project, launch.run_id, "detached", python=launch.python)
    finally:
        progress.close()
    return api.finish_run(ctx, launch, result.exit_code, tail_lines("".join(collected)))


class BackgroundFollower:
    """Keeps a notebook display (a display handle) updated from a thread; the cell returns at once."""

    def __init__(self, ctx: api.Context | None, launch: api.Launch, max_lines: int = 200, fetch: api.Fetch | None = None):
        from IPython.display import display

        self.ctx, self.launch, self.max_lines, self.fetch = ctx, launch, max_lines, fetch
        self.lines: list[str] = []
        self.partial = ""
        self.parser = api.ProgressParser()
        self.result: api.TrainResult | None = None
        self._stop = threading.Event()
        self.handle = display(self._render("starting…"), display_id=True)
        self.thread = threading.Thread(target=self._run, name=f"runctl-follow-{launch.run_id}", daemon=True)
        self.thread.start()

    def _render(self, status: str):
        import html

        from IPython.display import HTML

        progress = self.parser.latest_epoch or self.parser.latest
        bar = ""
        if progress:
            pct = int(100 * progress.current / max(progress.total, 1))
            bar = (f"<div><progress max='{progress.total}' value='{progress.current}'></progress> "
                   f"{progress.kind} {progress.current}/{progress.total} ({pct}%)</div>")
        body = html.escape("\n".join(self.lines[-self.max_lines:] + ([self.partial] if self.partial else [])))
        return HTML(f"<div class='runctl-live'><b>run {self.launch.run_id} on {self.launch.instance_id}</b>: "
                    f"{html.escape(status)}{bar}<pre style='max-height:24em;overflow:auto'>{body}</pre></div>")

    def _on_text(self, text: str) -> None:
        self.parser.feed(text)
        data = self.partial + text
        parts = data.split("\n")
        self.partial = parts.pop()
        self.lines.extend(parts)
        self.handle.update(self._render("running"))

    def _run(self) -> None:
        try:
            follow = api.follow_run(self.ctx, self.launch, self._on_text, should_stop=self._stop.is_set,
                                fetch=self.fetch, echo=lambda line: self.lines.append(f"[runctl] {line}"))
            if self._stop.is_set():
                self.handle.update(self._render("detached (the run goes on)"))
                return
            self.result = api.finish_run(self.ctx, self.launch, follow.exit_code, tail_lines("\n".join(self.lines)))
            self.handle.update(self._render(self.result.summary()))
        except Exception as exc:  # a thread cannot raise into the cell: show it in the display
            message = exc.render("%runctl") if hasattr(exc, "render") else f"{type(exc).__name__}: {exc}"
            self.handle.update(self._render(f"stopped following: {message}"))

    def stop(self) -> None:
        self._stop.set()


_FOLLOWERS: dict[str, BackgroundFollower] = {}


def stream_or_detach(ctx: api.Context | None, launch: api.Launch, fe: Frontend, monitor: str,
                     fetch: api.Fetch | None = None) -> api.TrainResult | None:
    """Without --wait: keep a display in this cell updated from a thread (notebook), or say how to follow."""
    if fe.notebook:
        previous = _FOLLOWERS.pop(launch.instance_id, None)
        if previous:
            previous.stop()
        _FOLLOWERS[launch.instance_id] = BackgroundFollower(ctx, launch, fetch=fetch)
        return None
    fe.echo(f"Follow it with: {fe.prefix} {monitor}")
    return api.TrainResult(launch.instance_id, launch.project, launch.run_id, "running", python=launch.python)


# --- the commands that show a run ----------------------------------------------------------------

def _write_out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def train_command(ctx: api.Context, c: Command, fe: Frontend) -> api.TrainResult | None:
    """`aws train`: start the run, then stream it here (--wait) or follow it in the background."""
    launch = api.train(ctx, c.instance_id, c.script, c.script_args, project=c.project, sync_code=c.sync_code,
                       bucket=c.bucket, resume=c.resume, project_root=c.project_root, autostop=c.autostop,
                       max_hours=c.max_hours, max_cost=c.max_cost, torchrun=c.torchrun,
                       nproc_per_node=c.nproc_per_node, python=c.python, echo=fe.echo)
    if c.wait:
        result = wait_in_foreground(ctx, launch, _write_out, prefix=fe.prefix)
        if result.state == "failed":
            raise api.run_failure(result)
        return result  # each front end shows it once (a notebook's Out, the shell's stdout)
    return stream_or_detach(ctx, launch, fe, f"aws monitor {launch.instance_id} --follow")


REATTACH_CONTEXT_BYTES = 4096  # `monitor --follow` shows this much of the log before the live part


def monitor_command(ctx: api.Context, c: Command, fe: Frontend) -> api.TrainResult | None:
    """`aws monitor`: the latest (or named) run's header and log tail, its whole log (--run), or the live
    log from a few KB back (--follow)."""
    info = api.run_info(ctx, c.instance_id, c.project, c.run_id)
    if info is None:
        fe.echo(api.no_runs_line(ctx, c.instance_id, c.project))
        return None
    fe.echo(info.header())
    if c.follow and info.state == "running":
        # re-attach with the last few KB of context, from a whole line
        return wait_in_foreground(ctx, info.launch, _write_out, prefix=fe.prefix, from_line_start=True,
                                  start_offset=max(0, info.log_size - REATTACH_CONTEXT_BYTES))
    # A finished run asked by --run shows its whole log; otherwise the tail.
    start = 0 if c.run_id else max(0, info.log_size - api.MAX_LOG_CHUNK_BYTES)
    lines = api.run_log(ctx, info, start, fe.echo).splitlines()
    _write_out("\n".join(lines if c.run_id else lines[-c.lines:]) + "\n")
    return None


def local_train_command(c: Command, fe: Frontend) -> api.TrainResult | None:
    """`local train`: the same launcher on this machine, its log followed the same way."""
    launch = api.local_train(c.script, c.script_args, c.project)
    fe.echo(f"[local] Started run {launch.run_id} (PID {launch.pid}, project {launch.project}); log {launch.log_path}")
    fetch = api.local_log(launch)
    if c.wait:
        result = wait_in_foreground(None, launch, _write_out, fetch=fetch,
                                    detach_hint=api.local_follow_hint(launch))
        if result.state == "failed":
            raise api.run_failure(result, launch)
        return result  # shown once by the front end
    if fe.notebook:  # a display in the cell, updated from a thread
        return stream_or_detach(None, launch, fe, "", fetch=fetch)
    # In a shell, say how to follow it: following a local log is `tail -f`, not a runctl command.
    fe.echo(api.local_follow_hint(launch))
    return api.TrainResult(launch.instance_id, launch.project, launch.run_id, "running")
