"""``%runctl panel train INSTANCE_ID``: start a run, watch its log and progress, stop it safely."""

from __future__ import annotations

import html
import logging
import shlex
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import ipywidgets as widgets

from ..api import ProgressParser
from ..errors import GuardRefused, Step, UsageError
from ..models import validate_instance_id
from ._actions import PanelActions
from ._base import ERROR_STYLE, GUARD_STYLE, PanelBase, error_text, pre

log = logging.getLogger(__name__)

MAX_LOG_LINES = 1000
TAIL_LINES = 20
CHUNK_LINES = 50               # the log view grows by blocks of this many lines (earlier blocks never redrawn)
ATTACH_CONTEXT_BYTES = 64 * 1024  # a run started elsewhere: its log from this far back


def _clock(seconds: float) -> str:
    total = max(0, int(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _money(usd: float) -> str:
    """$0.1234, or six decimals below a cent (a short run costs fractions of a cent)."""
    return f"${usd:.4f}" if usd >= 0.01 else f"${usd:.6f}"


def _log_block(lines: list[str]) -> str:
    return ("<pre class='runctl-log-text' style='margin:0;font-size:12px;white-space:pre-wrap'>"
            f"{html.escape(chr(10).join(lines))}</pre>")


class TrainingPanel(PanelBase):
    """Start / follow / stop a training run on one instance.

    ``script``, ``args`` (a string split with shlex, or a list) and ``project`` pre-fill the form.
    ``magic_config``: settings for ``api.context(magic=…)``; ``ctx``: a ready Context (tests);
    ``actions``: replace the API calls (tests). Re-creating the panel for the same instance stops
    this one's threads, and the new panel re-attaches to a run this one was following. Opened on an
    instance whose run was started elsewhere (``%runctl aws train``, another notebook), the panel
    attaches to it: its log from the last 64 KB, progress and Stop.

    The log box keeps to its newest line while it grows, unless the reader scrolled up: it is a
    scroll box laid out bottom-up (``column-reverse``) whose blocks of lines are only ever appended,
    so the browser keeps the reader's place.
    """

    kind = "training"

    def __init__(self, instance_id: str, *, magic_config: dict[str, Any] | None = None, ctx: Any = None,
                 script: str = "", args: str | Sequence[str] = "", project: str = "",
                 actions: PanelActions | None = None) -> None:
        self.instance_id = validate_instance_id(instance_id)
        args_text = args if isinstance(args, str) else shlex.join(args)
        self.title = widgets.HTML(f"<b>runctl training on {html.escape(self.instance_id)}</b>")
        self.script = widgets.Text(value=script, description="script", placeholder="train.py (path from the notebook)",
                                   layout=widgets.Layout(width="420px"))
        self.args = widgets.Text(value=args_text, description="args", placeholder="--epochs 10",
                                 layout=widgets.Layout(width="420px"))
        self.project = widgets.Text(value=project, description="project", placeholder="default: the project folder",
                                    layout=widgets.Layout(width="420px"))
        self.start_button = widgets.Button(description="Start", icon="play", button_style="success",
                                           layout=widgets.Layout(width="100px"))
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="warning", disabled=True,
                                          tooltip="SIGTERM the training (it checkpoints), upload checkpoints, "
                                                  "stop the instance",
                                          layout=widgets.Layout(width="100px"))
        self.state = widgets.HTML("")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="progress",
                                            layout=widgets.Layout(width="420px"))
        self.progress_label = widgets.HTML("")
        self.cost = widgets.HTML("")
        self.message = widgets.HTML("")
        self.log_blocks = widgets.VBox([], layout=widgets.Layout(flex="0 0 auto"))
        self.log_view = widgets.Box([self.log_blocks], layout=widgets.Layout(
            display="flex", flex_flow="column-reverse", max_height="22em", overflow="auto",
            border="1px solid #ccc", padding="4px"))
        for w, cls in ((self.script, "runctl-script"), (self.args, "runctl-args"),
                       (self.project, "runctl-project"), (self.start_button, "runctl-train-start"),
                       (self.stop_button, "runctl-train-stop"), (self.state, "runctl-train-state"),
                       (self.progress, "runctl-progress"), (self.progress_label, "runctl-progress-label"),
                       (self.cost, "runctl-cost"), (self.message, "runctl-message"), (self.log_view, "runctl-log")):
            w.add_class(cls)
        super().__init__(self.instance_id, actions=actions, children=[
            self.title, self.script, self.args, self.project,
            widgets.HBox([self.start_button, self.stop_button, self.state]),
            widgets.HBox([self.progress, self.progress_label]),
            self.cost, self.message, self.log_view,
        ])
        self.launch: Any = None
        self.result: Any = None          # the TrainResult once a run has ended (finish_run)
        self.final_state: str | None = None
        self.exit_code: int | None = None
        self._lines: list[str] = []
        self._partial = ""
        self._log_lock = threading.Lock()
        self._parser = ProgressParser()
        self._started_at: float | None = None
        self._ended_at: float | None = None
        self._price: tuple[float | None, str] | None = None
        self._follow_stop = threading.Event()
        self._run_done = threading.Event()
        self._run_done.set()
        self._stop_requested = False
        self._messages: list[str] = []
        self._blocks: list[widgets.HTML] = []
        self._block_lines: list[list[str]] = []
        self._attach_lock = threading.Lock()
        self.attached_elsewhere = False   # following a run this panel did not start
        self._open_context(ctx, magic_config)

        self.start_button.on_click(lambda _b: self.start())
        self.stop_button.on_click(lambda _b: self.stop())
        self._set_state("idle")
        old = self._register()
        if self._ctx_error is not None:
            self.show_error(self._ctx_error)
        elif isinstance(old, TrainingPanel) and old.launch is not None and not old._run_done.is_set():
            self._adopt(old)
        else:
            self.spawn("attach", self._attach_running)

    # --- state ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.launch is not None and not self._run_done.is_set()

    @property
    def state_text(self) -> str:
        return self._state_text

    def _set_state(self, text: str, css: str = "") -> None:
        self._state_text = text
        color = {"ok": "#1b5e20", "bad": "#b71c1c", "warn": "#e65100"}.get(css, "inherit")
        self.state.value = (f"<span class='runctl-state' style='font-weight:bold;color:{color}'>"
                            f"{html.escape(text)}</span>")

    def action_buttons(self) -> Iterable[widgets.Button]:
        return (self.start_button, self.stop_button)

    def _update_buttons(self) -> None:
        self.start_button.disabled = self.busy or self.running
        self.stop_button.disabled = self.busy or not self.running or self._stop_requested

    # --- start ----------------------------------------------------------------------------------

    def start(self) -> threading.Thread | None:
        """Start the script on the instance (worker thread), then follow its log."""
        script = self.script.value.strip()
        try:
            if not script:
                raise UsageError("Enter the training script's path first.",
                                 [Step("A path relative to the notebook's folder, e.g. train.py")])
            try:
                argv = shlex.split(self.args.value)
            except ValueError as exc:
                raise UsageError(f"Cannot split the script arguments: {exc}.",
                                 [Step("Check the quotes in the args field")]) from None
        except UsageError as err:
            self.show_error(err)
            return None
        if self.running:
            return None
        project = self.project.value.strip() or None

        def work() -> None:
            if self._ctx_error is not None:
                raise self._ctx_error
            self._set_message([])
            self._set_state("starting…")
            launch = self.actions.start_training(self.ctx, self.instance_id, script, argv, project=project,
                                                 echo=self._echo)
            self.attached_elsewhere = False
            self._attach(launch)

        def on_error(exc: BaseException) -> bool:
            self.show_error(exc)
            self._set_state("refused" if isinstance(exc, GuardRefused) else "not started", "bad")
            return True

        return self.run_action("start", work, on_error)

    def _attach_running(self) -> None:
        """A run already going on the instance (``%runctl aws train``, another notebook): follow it."""
        project = self.project.value.strip() or None
        try:
            info = self.actions.run_info(self.ctx, self.instance_id, project)
        except Exception:  # a stopped instance, no access: the panel stays idle, Start says why
            log.debug("no running run to attach to", exc_info=True)
            return
        if info is None or getattr(info, "state", None) != "running" or self.stopped:
            return
        with self._attach_lock:
            if self.launch is not None or self.busy:  # Start was pressed meanwhile
                return
            self.attached_elsewhere = True
            self._echo(f"Run {info.launch.run_id} was already running on {self.instance_id}: following it "
                       "(its log from the last 64 KB; elapsed time and cost count from now).")
            self._attach(info.launch, start_offset=max(0, int(info.log_size) - ATTACH_CONTEXT_BYTES))

    def _attach(self, launch: Any, started_at: float | None = None, start_offset: int = 0) -> None:
        """Follow ``launch``: a log thread and a ticker (elapsed time and cost)."""
        self.launch = launch
        self.result = None
        self.final_state = None
        self.exit_code = None
        self._stop_requested = False
        self._started_at = started_at if started_at is not None else time.monotonic()
        self._ended_at = None
        with self._log_lock:
            self._lines, self._partial = [], ""
            self._parser = ProgressParser()
            self._blocks, self._block_lines = [], []
        self.log_blocks.children = ()
        self.progress.value, self.progress.max = 0, 1
        self.progress.bar_style = ""
        self.progress_label.value = ""
        follow_stop, done = threading.Event(), threading.Event()
        self._follow_stop, self._run_done = follow_stop, done
        self._set_state(f"running (run {launch.run_id})")
        self._update_buttons()
        self.spawn("follow", lambda: self._follow(launch, follow_stop, done, start_offset))
        self.spawn("ticker", lambda: self._tick(done))

    def _adopt(self, old: TrainingPanel) -> None:
        """Re-attach to the run the replaced panel was following (its log is read again from 0)."""
        self.script.value, self.args.value, self.project.value = old.script.value, old.args.value, old.project.value
        old.join(timeout=5.0)
        self._price = old._price
        self.attached_elsewhere = old.attached_elsewhere
        self._attach(old.launch, old._started_at)

    # --- following ------------------------------------------------------------------------------

    def _should_stop_following(self, follow_stop: threading.Event) -> bool:
        return follow_stop.is_set() or self.stopped

    def _follow(self, launch: Any, follow_stop: threading.Event, done: threading.Event, start_offset: int = 0) -> None:
        exit_code: int | None = None
        error: BaseException | None = None
        try:
            extra = {"start_offset": start_offset, "from_line_start": True} if start_offset else {}
            result = self.actions.follow_run(self.ctx, launch, self._on_text,
                                             should_stop=lambda: self._should_stop_following(follow_stop), **extra)
            exit_code = result.exit_code
        except Exception as exc:
            error = exc
        finally:
            self._flush_log()
            self._ended_at = time.monotonic()
            done.set()
        self._finish(launch, exit_code, error)

    def _finish(self, launch: Any, exit_code: int | None, error: BaseException | None) -> None:
        if self.stopped:  # closed or replaced: the run goes on; a newer panel may follow it
            return
        try:
            if self._stop_requested:
                return  # the stop action sets the final state once the instance is stopping
            if error is not None:
                self.show_error(error)
                self._set_state("lost the log (the run may go on)", "warn")
                return
            if exit_code is None:
                self._set_state("detached (the run goes on)", "warn")
                return
            self.exit_code = exit_code
            try:
                self.result = self.actions.finish_run(self.ctx, launch, exit_code, self.tail())
            except Exception as exc:
                self.show_error(exc)
            state = self.result.state if self.result is not None else None
            if state == "stopped":  # stopped from elsewhere: `%runctl aws stop`, the guardian
                self._final(f"stopped (exit code {exit_code})", "warn")
                self.progress.bar_style = "warning"
            elif exit_code == 0:
                self._final("succeeded", "ok")
                self.progress.bar_style = "success"
            else:
                self._final(f"failed (exit code {exit_code})", "bad")
                self.progress.bar_style = "danger"
        finally:
            self._update_buttons()

    def _final(self, text: str, css: str) -> None:
        self.final_state = text
        self._set_state(text, css)

    def _on_text(self, text: str) -> None:
        with self._log_lock:
            data = self._partial + text
            parts = data.split("\n")
            self._partial = parts.pop()
            self._lines.extend(parts)
            del self._lines[:-MAX_LOG_LINES]
            found = self._parser.feed(text)
            self._add_to_blocks(parts)
        for progress in found[-1:]:
            latest = self._parser.latest_epoch or progress
            if self.progress.max != latest.total:
                self.progress.max = latest.total
            self.progress.value = min(latest.current, latest.total)
            self.progress_label.value = f"{latest.kind} {latest.current}/{latest.total}"

    def _flush_log(self) -> None:
        with self._log_lock:
            if self._partial:
                self._lines.append(self._partial)
                self._partial = ""
                self._add_to_blocks([self._lines[-1]])
            self._parser.flush()

    def _add_to_blocks(self, lines: list[str]) -> None:
        """Append whole lines to the log view (under ``_log_lock``): the last block grows; a full one is
        left as it is and a new block starts, so what the reader scrolled to is never redrawn."""
        touched = max(0, len(self._blocks) - 1)
        count = len(self._blocks)
        for line in [*lines, *([None] if self._partial and not self._blocks else [])]:
            if not self._block_lines or len(self._block_lines[-1]) >= CHUNK_LINES:
                self._block_lines.append([])
                block = widgets.HTML("")
                block.add_class("runctl-log-block")
                self._blocks.append(block)
            if line is not None:
                self._block_lines[-1].append(line)
        if sum(len(b) for b in self._block_lines) > MAX_LOG_LINES + CHUNK_LINES:  # drop the oldest blocks
            while len(self._block_lines) > 1 and sum(len(b) for b in self._block_lines) > MAX_LOG_LINES:
                self._block_lines.pop(0)
                self._blocks.pop(0).close()
                touched = max(0, touched - 1)
            count = -1
        if count != len(self._blocks):
            self.log_blocks.children = tuple(self._blocks)
        for i in range(touched, len(self._blocks)):
            last = i == len(self._blocks) - 1
            self._blocks[i].value = _log_block(self._block_lines[i] + ([self._partial] if last and self._partial else []))

    @property
    def log_html(self) -> str:
        """The log view's HTML (its blocks, oldest first)."""
        return "".join(block.value for block in self._blocks)

    def log_lines(self) -> list[str]:
        with self._log_lock:
            return self._lines + ([self._partial] if self._partial else [])

    @property
    def log_text(self) -> str:
        return "\n".join(self.log_lines())

    def tail(self, n: int = TAIL_LINES) -> str:
        return "\n".join(self.log_lines()[-n:])

    # --- elapsed time and cost ------------------------------------------------------------------

    def _tick(self, done: threading.Event) -> None:
        if self._price is None:
            try:
                self._price = self.actions.hourly_price(self.ctx, self.instance_id)
            except Exception as exc:
                self._price = (None, f"price unknown: {error_text(exc).splitlines()[0]}")
        while True:
            self._update_cost()
            if done.wait(1.0) or self.stopped:
                break
        self._update_cost()

    def elapsed_seconds(self) -> float:
        if self._started_at is None:
            return 0.0
        return (self._ended_at or time.monotonic()) - self._started_at

    def cost_so_far(self) -> float | None:
        hourly = self._price[0] if self._price else None
        return None if hourly is None else hourly * self.elapsed_seconds() / 3600.0

    def _update_cost(self) -> None:
        cost = self.cost_so_far()
        price = self._price
        cost_text = "unknown" if cost is None else _money(cost)
        rate = "" if not price or price[0] is None else f" at ${price[0]:.4f}/hr ({price[1]})"
        since = " since attached" if self.attached_elsewhere else ""
        self.cost.value = (f"<span class='runctl-cost-text'>elapsed{since} {_clock(self.elapsed_seconds())} · "
                           f"cost so far {cost_text}{html.escape(rate)}</span>")

    # --- stop -----------------------------------------------------------------------------------

    def stop(self) -> threading.Thread | None:
        """Graceful stop: ``api.stop`` (SIGTERM → checkpoint → upload → stop the instance)."""
        if self.launch is None:
            return None
        follow_stop, done = self._follow_stop, self._run_done

        def work() -> None:
            self._stop_requested = True
            self._update_buttons()
            self._set_state("stopping… (checkpoint, upload, stop the instance)", "warn")
            try:
                inst = self.actions.stop(self.ctx, self.instance_id, echo=self._echo)
            except BaseException:
                self._stop_requested = False
                if done.is_set():
                    self._set_state("stop failed", "bad")
                else:
                    self._set_state(f"running (run {self.launch.run_id})")
                raise
            state = getattr(inst, "state", None)
            if state:
                self._echo(f"{self.instance_id} is {state}")
            follow_stop.set()  # the instance is going down: its log can no longer be read
            done.wait(30.0)
            self._final("stopped", "warn")

        return self.run_action("stop", work)

    # --- messages -------------------------------------------------------------------------------

    def _echo(self, line: str) -> None:
        self._messages.append(line)
        self.message.value = pre("\n".join(self._messages[-40:]), "runctl-echo")

    def _set_message(self, lines: list[str]) -> None:
        self._messages = list(lines)
        self.message.value = pre("\n".join(lines), "runctl-echo") if lines else ""

    def show_error(self, exc: BaseException) -> None:
        text = error_text(exc)
        self._messages = text.splitlines()
        style = GUARD_STYLE if isinstance(exc, GuardRefused) else ERROR_STYLE
        self.message.value = pre(text, "runctl-error", style)

    @property
    def message_text(self) -> str:
        return "\n".join(self._messages)
