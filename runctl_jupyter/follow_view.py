"""Showing a run as it goes: the log streamed into a cell (or a shell) under a progress bar (a display
above the log in a notebook, tqdm's text on stderr in a shell), or a display in the cell kept up to
date from a thread while the cell returns. Front-end code: it
reads the run through :mod:`runctl_jupyter.api` and is the only place that draws a run's progress.
"""

from __future__ import annotations

import atexit
import shlex
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import api
from .display import MATHJAX_IGNORE

if TYPE_CHECKING:
    from .dispatch import Frontend
    from .grammar import Command

LOG_TAIL_LINES = 20


def tail_lines(text: str, n: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-n:])


def in_kernel() -> bool:
    """True in a Jupyter kernel (a notebook's cell shows displays); False in a shell or terminal IPython."""
    if "IPython" not in sys.modules:  # the shell command never imports it
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _state_words(result: api.TrainResult) -> str:
    """``succeeded (exit code 0)``: the result's state without the "Run X on Y:" a header already says."""
    return result.state + ("" if result.exit_code is None else f" (exit code {result.exit_code})")


class _Progress:
    """The run's progress from its log lines (``epoch N/M``, tqdm's own), drawn with tqdm's meter.

    In a notebook: one display, made before the log streams so that it sits above it, updated in place
    and left showing where the run ended (a saved notebook never shows a bar at 0% under a finished run).
    In a shell: tqdm's bar on stderr. Lines replayed from before this follower attached (``monitor
    --follow``) move the bar without counting towards its rate and time left.
    """

    DRAW_EVERY_S = 0.2  # at most this often while the log streams (the last state is always drawn)

    def __init__(self, notebook: bool, desc: str = "training") -> None:
        self.parser = api.ProgressParser()
        self.notebook, self.desc = notebook, desc
        self.initial = 0                    # where the bar stood when this follower went live
        self.started = time.monotonic()     # …and when
        self.bar: Any = None                # tqdm's bar (shell), made at the first progress line
        self.handle: Any = None             # the cell's display (notebook)
        self._drawn = 0.0
        self.outcome: str | None = None
        self.hint = ""                      # how to re-attach, said if the kernel stops while it draws
        if notebook:
            from IPython.display import display

            self.handle = display(self._bundle(), raw=True, display_id=True)
            _LIVE_VIEWS.add(self)

    @property
    def position(self) -> Any:
        return self.parser.latest_epoch or self.parser.latest

    def replay(self, text: str) -> None:
        """Lines written before this follower attached: the bar moves, its rate does not count them."""
        self.parser.feed(text)
        now = self.position
        self.initial, self.started = (now.current if now else 0), time.monotonic()

    def feed(self, text: str) -> None:
        before = self.position
        self.parser.feed(text)
        if self.position is None or self.position == before:
            return
        if self.notebook:
            if time.monotonic() - self._drawn >= self.DRAW_EVERY_S:
                self._draw()
            return
        self._tqdm_to(self.position)

    def _tqdm_to(self, progress: Any) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=progress.total, initial=min(self.initial, progress.current), unit=progress.kind,
                            desc=self.desc, file=sys.stderr)
        if self.bar.total != progress.total:
            self.bar.total = progress.total
        if progress.current >= self.bar.n:
            self.bar.update(progress.current - self.bar.n)  # counts towards tqdm's rate
        else:  # a new inner loop: tqdm's own bars start again
            self.bar.n = progress.current
            self.bar.refresh()

    def meter(self, outcome: str | None = None) -> str:
        """tqdm's line for where the run stands; once it ended, its elapsed time, rate and outcome."""
        from tqdm import tqdm

        progress = self.position
        if progress is None:
            return ""
        ended = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}]"
        line = tqdm.format_meter(progress.current, progress.total, time.monotonic() - self.started, prefix=self.desc,
                                 unit=progress.kind, initial=min(self.initial, progress.current),
                                 bar_format=ended if outcome else None)
        return f"{line} {outcome}" if outcome else line

    def _bundle(self, outcome: str | None = None, note: str = "") -> dict[str, str]:
        import html

        progress = self.position
        if progress is None:  # (one line either way: what the notebooks' nbval sanitizer expects)
            line = (f"{self.desc}: no `epoch N/M` or tqdm line in the log · {outcome}" if outcome
                    else f"{self.desc}: waiting for the first `epoch N/M` or tqdm line")
            bar = ""
        else:
            line = self.meter(outcome)
            bar = f"<progress value='{progress.current}' max='{max(progress.total, 1)}'></progress> "
        plain = line + (f"\n{note}" if note else "")
        return {"text/plain": plain,
                "text/html": f"<div class='runctl-progress {MATHJAX_IGNORE}'>{bar}<code>{html.escape(line)}</code>"
                             + (f"<br>{html.escape(note)}" if note else "") + "</div>"}

    def _draw(self, outcome: str | None = None, note: str = "") -> None:
        if self.handle is not None:
            self._drawn = time.monotonic()
            self.handle.update(self._bundle(outcome, note), raw=True)

    def close(self, outcome: str | None = None) -> None:
        """The run ended (``outcome``: "succeeded", "stopped (exit code 0)", …) or this follower detached."""
        self.outcome = outcome or "detached"
        self.parser.flush()
        if self.notebook:
            _LIVE_VIEWS.discard(self)
            self._draw(self.outcome)
        elif self.bar is not None:
            self.bar.close()

    def kernel_stopping(self, hint: str) -> None:
        if self.outcome is None:
            self._draw("detached", f"The kernel stopped; the run goes on. {hint}")


def wait_in_foreground(ctx: api.Context | None, launch: api.Launch, write: Callable[[str], Any], *,
                       start_offset: int = 0, from_line_start: bool = False,
                       fetch: api.Fetch | None = None, prefix: str = "runctl",
                       detach_hint: str | None = None, replay: str = "",
                       notebook: bool | None = None) -> api.TrainResult:
    """Stream the log to ``write`` with a progress bar until the run ends; Ctrl-C detaches.

    ``prefix`` ("%runctl" in a notebook) goes into the re-attach hint; ``detach_hint`` replaces it
    (a local run is followed with ``tail -f``, not a runctl command). ``replay``: the log's last lines
    from before this follower attached (shown first; the bar's rate does not count them), the live
    log then read from ``start_offset``. ``notebook``: draw the bar as a cell display (default: in a
    Jupyter kernel) rather than tqdm's text on stderr."""
    progress = _Progress(in_kernel() if notebook is None else notebook)
    progress.hint = detach_hint or (f"Re-attach with `{prefix} aws monitor {launch.instance_id} --follow`, "
                                    f"stop it with `{prefix} aws stop {launch.instance_id}`.")
    collected: list[str] = []
    if replay:
        collected.append(replay)
        write(replay)
        progress.replay(replay)

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
        progress.close("stopped")
        write(f"\n[runctl] {ended.message}\n")
        return api.TrainResult(launch.instance_id, launch.project, launch.run_id, "stopped", None,
                               tail_lines("".join(collected)), launch.python)
    except KeyboardInterrupt:
        progress.close("detached (the run goes on)")
        write(f"\nDetached from run {launch.run_id}; it goes on. {progress.hint}\n")
        return api.TrainResult(launch.instance_id, launch.project, launch.run_id, "detached", python=launch.python)
    except BaseException:
        progress.close("stopped following")
        raise
    final = api.finish_run(ctx, launch, result.exit_code, tail_lines("".join(collected)))
    progress.close(_state_words(final))
    return final


class BackgroundFollower:
    """Keeps a notebook display (a display handle) updated from a thread; the cell returns at once.

    ``reattach``: how to follow the run again (a command, or ``tail -f`` for a local run), said while it
    runs. Once the kernel has gone (a restart, a shutdown, a notebook reopened later) nothing can update
    the display any more — JupyterLab drops a restarted kernel's display updates — so the display says
    so itself: while the run goes on it is redrawn at least every :data:`HEARTBEAT_S` seconds, and a
    note hidden by a CSS animation shows after :data:`STALE_AFTER_S` seconds without a redraw ("this view
    is detached"). Where styles are stripped (an untrusted notebook) the note always shows. The kernel's
    exit also sends a last update (a front end that still listens shows "detached").
    """

    HEARTBEAT_S = 5.0
    STALE_AFTER_S = 20

    def __init__(self, ctx: api.Context | None, launch: api.Launch, max_lines: int = 200, fetch: api.Fetch | None = None,
                 reattach: str = ""):
        from IPython.display import display

        self.ctx, self.launch, self.max_lines, self.fetch = ctx, launch, max_lines, fetch
        self.reattach = reattach
        self.lines: list[str] = []
        self.partial = ""
        self.parser = api.ProgressParser()
        self.result: api.TrainResult | None = None
        self._stop = threading.Event()
        self._drawn = time.monotonic()
        self.handle = display(self._render("starting…"), display_id=True)
        _LIVE_VIEWS.add(self)
        self.thread = threading.Thread(target=self._run, name=f"runctl-follow-{launch.run_id}", daemon=True)
        self.thread.start()

    def _title(self) -> str:
        return f"run {self.launch.run_id} on {self.launch.instance_id}"

    def _running_status(self) -> str:
        return "running (shown here while this kernel runs)"

    def _stale_note(self) -> str:
        """Shown only when the display stopped being redrawn: the kernel that drew it is gone."""
        import html

        again = f" Follow it again with {self.reattach}." if self.reattach else ""
        css = (f"<style>.runctl-live .runctl-stale{{max-height:0;overflow:hidden;"
               f"animation:runctl-stale 1ms step-end {self.STALE_AFTER_S}s forwards}}"
               "@keyframes runctl-stale{to{max-height:10em}}</style>")
        return (f"{css}<div class='runctl-stale'><i>Not updated for {self.STALE_AFTER_S} s: the kernel that "
                f"drew this has stopped or restarted, so this view is detached (the run may go on).{html.escape(again)}"
                "</i></div>")

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
        stale = self._stale_note() if status.startswith(("running", "starting")) else ""
        self._drawn = time.monotonic()
        return HTML(f"<div class='runctl-live {MATHJAX_IGNORE}'><b>{html.escape(self._title())}</b>: <span class='runctl-live-state'>{html.escape(status)}</span>"
                    f"{stale}{bar}<div style='max-height:24em;overflow:auto;display:flex;flex-direction:column-reverse'>"
                    f"<pre style='margin:0'>{body}</pre></div></div>")  # (bottom-up: opens at the newest line)

    def _should_stop(self) -> bool:
        """Asked before each read of the log: also redraws a quiet run's display (its heartbeat)."""
        if not self._stop.is_set() and time.monotonic() - self._drawn >= self.HEARTBEAT_S:
            self.handle.update(self._render(self._running_status()))
        return self._stop.is_set()

    def _on_text(self, text: str) -> None:
        self.parser.feed(text)
        data = self.partial + text
        parts = data.split("\n")
        self.partial = parts.pop()
        self.lines.extend(parts)
        self.handle.update(self._render(self._running_status()))

    def _run(self) -> None:
        try:
            follow = api.follow_run(self.ctx, self.launch, self._on_text, should_stop=self._should_stop,
                                    fetch=self.fetch, echo=lambda line: self.lines.append(f"[runctl] {line}"))
            if self._stop.is_set():
                self.handle.update(self._render("detached (the run goes on)"))
                return
            self.result = api.finish_run(self.ctx, self.launch, follow.exit_code, tail_lines("\n".join(self.lines)))
            self.handle.update(self._render(_state_words(self.result)))
        except Exception as exc:  # a thread cannot raise into the cell: show it in the display
            message = exc.render("%runctl") if hasattr(exc, "render") else f"{type(exc).__name__}: {exc}"
            self.handle.update(self._render(f"stopped following: {message}"))
        finally:
            _LIVE_VIEWS.discard(self)

    def stop(self) -> None:
        self._stop.set()

    def kernel_stopping(self, hint: str = "") -> None:
        """The kernel is going away: say so in the display, which otherwise would claim "running" for ever."""
        if self.result is None:
            self._stop.set()
            where = f" Follow it with {self.reattach}." if self.reattach else ""
            self.handle.update(self._render(f"detached: the kernel stopped; the run goes on.{where}"))


_LIVE_VIEWS: set[Any] = set()  # displays that would otherwise say "running" after the kernel is gone


def _kernel_stopping() -> None:
    """At the kernel's exit (a restart, a shutdown): each live display says it detached."""
    for view in list(_LIVE_VIEWS):
        try:
            view.kernel_stopping(getattr(view, "hint", ""))
        except Exception:  # the kernel is going away: never block its exit
            continue


atexit.register(_kernel_stopping)


_FOLLOWERS: dict[str, BackgroundFollower] = {}


def stream_or_detach(ctx: api.Context | None, launch: api.Launch, fe: Frontend, monitor: str,
                     fetch: api.Fetch | None = None) -> api.TrainResult | None:
    """Without --wait: keep a display in this cell updated from a thread (notebook), or say how to follow."""
    if fe.notebook:
        previous = _FOLLOWERS.pop(launch.instance_id, None)
        if previous:
            previous.stop()
        reattach = f"`{fe.prefix} {monitor}`" if monitor else f"`tail -f {shlex.quote(launch.log_path)}`"
        _FOLLOWERS[launch.instance_id] = BackgroundFollower(ctx, launch, fetch=fetch, reattach=reattach)
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
        # re-attach: the last few KB of the log (from a whole line) as context, then the live log from there
        start = max(0, info.log_size - REATTACH_CONTEXT_BYTES)
        context = api.run_log(ctx, info, start, fe.echo) if info.log_size > start else ""
        if start > 0:
            context = context.partition("\n")[2]
        return wait_in_foreground(ctx, info.launch, _write_out, prefix=fe.prefix, start_offset=info.log_size,
                                  replay=context)
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
