"""``%runctl panel``: the cost table, refreshed on demand or every N seconds, with instance actions.

Every action asks for confirmation first (Confirm / Cancel); terminate goes through the checkpoint
guard and, when it refuses, shows the guard's warning and offers an explicit "Force terminate".
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import ipywidgets as widgets

from .. import display
from ..errors import NOTEBOOK_PREFIX, GuardRefused
from ._actions import PanelActions
from ._base import ERROR_STYLE, GUARD_STYLE, PanelBase, error_text, pre, show

STATES = ("all", "running", "stopped", "pending", "stopping", "shutting-down")
MAX_MESSAGE_LINES = 60
TRANSIENT_STATES = ("pending", "stopping", "shutting-down")
# After a refresh that shows an instance on its way somewhere: refresh again after these pauses (about
# 3 minutes in all, EC2's usual stop) until every row is stable, then stop asking.
SETTLE_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0, 30.0, 30.0)
# The columns shown at first (what warns and what it costs); the rest behind "All columns".
# The cost table's first columns (costs.styling.FIRST_COLUMNS, not imported here: it needs pandas), then where.
SHORT_COLUMNS = ("instance_id", "name", "instance_type", "gpu", "state", "warnings", "usd_per_hour",
                 "accrued_usd", "uptime", "project", "fleet", "region")

_PROMPTS = {
    "start": "Start {iid}? It bills again from now on.",
    "stop": "Stop {iid}? Its training gets SIGTERM to checkpoint, checkpoints are uploaded, then the "
            "instance stops (its disk stays and keeps billing for EBS).",
    "terminate": "Terminate {iid}? Its disk is deleted. runctl refuses while it holds checkpoints "
                 "without a copy in S3.",
}


class ResourcesPanel(PanelBase):
    """The resources table with filters, refresh (button / every N seconds) and start/stop/terminate.

    ``refresh_seconds``: refresh in the background every N seconds (None or 0: only on the button).
    ``magic_config``: settings for ``api.context(magic=…)``; ``ctx``: a ready Context (tests).
    ``actions``: replace the API calls (tests). The first refresh starts at once, in a thread.
    A refresh that finds an instance pending, stopping or shutting down refreshes again, backing off
    (``settle_delays``), until every row is stable. The table shows what warns and what it costs
    first (:data:`SHORT_COLUMNS`); "All columns" shows the rest.
    """

    kind = "resources"

    def __init__(self, refresh_seconds: float | None = None, *, magic_config: dict[str, Any] | None = None,
                 ctx: Any = None, state: str | None = None, region: str = "", project: str = "",
                 actions: PanelActions | None = None, auto_refresh_first: bool = True,
                 settle_delays: tuple[float, ...] = SETTLE_DELAYS_S) -> None:
        self.title = widgets.HTML("<b>runctl resources</b>")
        self.state_filter = widgets.Dropdown(options=list(STATES), value=state or "all", description="state",
                                             layout=widgets.Layout(width="190px"))
        self.region_filter = widgets.Text(value=region, placeholder="us-east-1,eu-west-1", description="region",
                                          continuous_update=False, layout=widgets.Layout(width="240px"))
        self.project_filter = widgets.Text(value=project, placeholder="any", description="project",
                                           continuous_update=False, layout=widgets.Layout(width="200px"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", tooltip="Refresh the table",
                                             layout=widgets.Layout(width="100px"))
        self.auto_refresh = widgets.BoundedIntText(value=math.ceil(refresh_seconds or 0), min=0, max=86_400,
                                                   description="auto (s)", tooltip="Refresh every N seconds (0: off)",
                                                   layout=widgets.Layout(width="150px"))
        self.all_columns = widgets.ToggleButton(value=False, description="All columns", icon="columns",
                                                tooltip="Show every column of the table (else what warns and costs)",
                                                layout=widgets.Layout(width="130px"))
        self.table = widgets.HTML("<i>loading…</i>", layout=widgets.Layout(overflow="auto", max_height="420px"))
        self.status = widgets.HTML("")
        self.instance = widgets.Dropdown(options=[], description="instance", layout=widgets.Layout(width="430px"))
        self.start_button = widgets.Button(description="Start", icon="play", layout=widgets.Layout(width="100px"))
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="warning",
                                          layout=widgets.Layout(width="100px"))
        self.terminate_button = widgets.Button(description="Terminate", icon="trash", button_style="danger",
                                               layout=widgets.Layout(width="120px"))
        self.confirm_text = widgets.HTML("")
        self.confirm_button = widgets.Button(description="Confirm", button_style="danger",
                                             layout=widgets.Layout(width="100px"))
        self.cancel_button = widgets.Button(description="Cancel", layout=widgets.Layout(width="100px"))
        self.confirm_box = widgets.HBox([self.confirm_text, self.confirm_button, self.cancel_button])
        self.force_button = widgets.Button(description="Force terminate", button_style="danger", icon="warning",
                                           layout=widgets.Layout(width="170px"),
                                           tooltip="Terminate anyway: the checkpoints on the instance are lost")
        self.force_box = widgets.HBox([self.force_button])
        self.message = widgets.HTML("")
        for w, cls in ((self.state_filter, "runctl-state-filter"), (self.region_filter, "runctl-region-filter"),
                       (self.project_filter, "runctl-project-filter"), (self.refresh_button, "runctl-refresh"),
                       (self.auto_refresh, "runctl-auto-refresh"), (self.table, "runctl-table"),
                       (self.all_columns, "runctl-all-columns"),
                       (self.status, "runctl-status"), (self.instance, "runctl-instance"),
                       (self.start_button, "runctl-start"), (self.stop_button, "runctl-stop"),
                       (self.terminate_button, "runctl-terminate"), (self.confirm_box, "runctl-confirm-box"),
                       (self.confirm_button, "runctl-confirm"), (self.cancel_button, "runctl-cancel"),
                       (self.force_box, "runctl-force-box"), (self.force_button, "runctl-force-terminate"),
                       (self.message, "runctl-message")):
            w.add_class(cls)
        show(self.confirm_box, False)
        show(self.force_box, False)
        super().__init__("all", actions=actions, children=[
            self.title,
            widgets.HBox([self.state_filter, self.region_filter, self.project_filter, self.refresh_button,
                          self.auto_refresh, self.all_columns]),
            self.table,
            self.status,
            widgets.HBox([self.instance, self.start_button, self.stop_button, self.terminate_button]),
            self.confirm_box,
            self.force_box,
            self.message,
        ])
        self.frame: Any = None           # the last DataFrame shown
        self.last_refresh: datetime | None = None
        self.refresh_count = 0
        self._pending: tuple[str, str] | None = None   # (action, instance id) awaiting Confirm
        self._force_target: str | None = None
        self._messages: list[str] = []
        self._message_style = ""
        self._refresh_lock = threading.Lock()
        self._auto_wake = threading.Event()
        self._auto_thread: threading.Thread | None = None
        self.settle_delays = tuple(settle_delays)
        self._settle_thread: threading.Thread | None = None
        self._settle_lock = threading.Lock()
        self._settle_note = ""
        self._open_context(ctx, magic_config)

        self.refresh_button.on_click(lambda _b: self.refresh())
        self.start_button.on_click(lambda _b: self.ask("start"))
        self.stop_button.on_click(lambda _b: self.ask("stop"))
        self.terminate_button.on_click(lambda _b: self.ask("terminate"))
        self.confirm_button.on_click(lambda _b: self.confirm())
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.force_button.on_click(lambda _b: self.force_terminate())
        for w in (self.state_filter, self.region_filter, self.project_filter):
            w.observe(lambda _c: self.refresh(), names="value")
        self.auto_refresh.observe(self._on_auto_changed, names="value")
        self.all_columns.observe(lambda _c: self._redraw_table(), names="value")

        self._register()
        if self._ctx_error is not None:
            self.show_error(self._ctx_error)
            self.table.value = ""
        elif auto_refresh_first:
            self.refresh()
        self._ensure_auto_thread()

    # --- refresh --------------------------------------------------------------------------------

    @property
    def refresh_seconds(self) -> int:
        return int(self.auto_refresh.value or 0)

    @refresh_seconds.setter
    def refresh_seconds(self, value: float | None) -> None:
        self.auto_refresh.value = math.ceil(value or 0)

    def filters(self) -> dict[str, Any]:
        """The keyword arguments given to ``resources.list_frame`` for the current filters."""
        state = self.state_filter.value
        return {"state": None if state == "all" else state,
                "project": self.project_filter.value.strip() or None,
                "regions": self.region_filter.value.strip() or None}

    def refresh(self, wait: bool = False) -> threading.Thread | None:
        """Refresh the table in a background thread (``wait=True``: in this thread)."""
        if wait:
            self._refresh_now()
            return None
        return self.spawn("refresh", self._refresh_now)

    def _refresh_now(self, settling: bool = False) -> None:
        if self._ctx_error is not None or self.stopped:
            return
        with self._refresh_lock:
            self.refresh_button.disabled = True
            try:
                df = self.actions.list_frame(self.ctx, **self.filters())
            except Exception as exc:
                self.status.value = self._status_html(None, "refresh failed")
                self.show_error(exc)
                return
            finally:
                self.refresh_button.disabled = False
            self.frame = df
            self.last_refresh = datetime.now().astimezone()
            self.table.value = self._table_html(df)
            self._update_instances(df)
            if not settling and self.unsettled(df):
                self._start_settling()
            self.status.value = self._status_html(df, self._settle_note)
            self.refresh_count += 1

    @staticmethod
    def unsettled(df: Any) -> list[str]:
        """The instances of ``df`` on their way to another state (pending, stopping, shutting down)."""
        if df is None or not len(df):
            return []
        return list(df.loc[df["state"].isin(TRANSIENT_STATES), "instance_id"])

    def _start_settling(self) -> None:
        with self._settle_lock:
            if self._settle_thread is not None and self._settle_thread.is_alive():
                return
            self._settle_note = "refreshing until every instance settles"
            self._settle_thread = self.spawn("settle", self._settle)

    def _settle(self) -> None:
        """Refresh again, backing off, until no row is pending/stopping/shutting down (or the delays run out)."""
        try:
            for delay in self.settle_delays:
                waiting = self.unsettled(self.frame)
                if not waiting:
                    return
                self._settle_note = (f"waiting for {len(waiting)} instance(s) to settle: next refresh in "
                                     f"{delay:g} s")
                self.status.value = self._status_html(self.frame, self._settle_note)
                if self._stop_event.wait(delay):
                    return
                self._refresh_now(settling=True)
            if self.unsettled(self.frame):
                self._settle_note = "still changing state: press Refresh to look again"
                self.status.value = self._status_html(self.frame, self._settle_note)
                return
        finally:
            if not self.unsettled(self.frame):
                self._settle_note = ""
                if self.frame is not None:
                    self.status.value = self._status_html(self.frame)

    @property
    def settling(self) -> bool:
        return self._settle_thread is not None and self._settle_thread.is_alive()

    def _redraw_table(self) -> None:
        if self.frame is not None:
            self.table.value = self._table_html(self.frame)

    def _table_html(self, df: Any) -> str:
        if len(df) == 0:
            caption = df.attrs.get("runctl_caption_info")
            where = f" ({caption.world})" if caption is not None and getattr(caption, "world", None) else ""
            return f"<i>No instances match these filters{where}.</i>"
        return display.resources_html(df, columns=None if self.all_columns.value else SHORT_COLUMNS)

    def _status_html(self, df: Any, note: str = "") -> str:
        parts: list[str] = []
        if df is not None:
            running = df[df["state"] == "running"] if len(df) else df
            hourly = float(running["usd_per_hour"].sum(min_count=1)) if len(running) else 0.0
            accrued = float(df["accrued_usd"].sum(min_count=1)) if len(df) else 0.0
            snapshots = int(df["kind"].eq("snapshot").sum()) if "kind" in df.columns else 0
            parts += [f"{len(running)} running", f"{display.hourly(hourly)}/hr", f"{display.usd(accrued)} accrued",
                      f"{len(df) - snapshots} instance(s) listed"]
            if snapshots:
                parts.append(f"{snapshots} snapshot(s)")
        if self.last_refresh is not None:
            parts.append(f"last refresh {self.last_refresh:%H:%M:%S}")
        if note:
            parts.append(note)
        return f"<span class='runctl-totals'>{' · '.join(parts)}</span>"

    def _update_instances(self, df: Any) -> None:
        options = []
        for row in df.itertuples(index=False):
            if getattr(row, "kind", "instance") == "snapshot":  # a saved disk: no instance to act on
                continue
            label = f"{row.instance_id} · {row.state} · {row.instance_type}"
            if getattr(row, "project", ""):
                label += f" · {row.project}"
            options.append((label, row.instance_id))
        current = self.instance.value
        self.instance.options = options
        ids = [value for _, value in options]
        if current in ids:
            self.instance.value = current
        elif ids:
            self.instance.value = ids[0]

    def _on_auto_changed(self, _change: dict[str, Any]) -> None:
        self._auto_wake.set()
        self._ensure_auto_thread()

    def _ensure_auto_thread(self) -> None:
        if self.refresh_seconds <= 0 or self.stopped:
            return
        if self._auto_thread is not None and self._auto_thread.is_alive():
            return
        self._auto_thread = self.spawn("auto-refresh", self._auto_loop)

    def _auto_loop(self) -> None:
        while not self.stopped:
            seconds = self.refresh_seconds
            if seconds <= 0:
                return
            self._auto_wake.wait(seconds)
            if self._auto_wake.is_set():  # the interval changed (or the panel stopped): re-read it
                self._auto_wake.clear()
                continue
            if not self.stopped:
                self._refresh_now()

    def _on_stop(self) -> None:
        self._auto_wake.set()

    # --- actions --------------------------------------------------------------------------------

    def action_buttons(self) -> Iterable[widgets.Button]:
        return (self.start_button, self.stop_button, self.terminate_button, self.confirm_button,
                self.force_button)

    def ask(self, action: str, instance_id: str | None = None) -> None:
        """First step of an action: show Confirm / Cancel. Nothing is sent before Confirm."""
        iid = instance_id or self.instance.value
        if not iid:
            self._set_message(["Pick an instance first (refresh if the list is empty)."], ERROR_STYLE)
            return
        self._pending = (action, iid)
        self.confirm_text.value = f"<b>{_PROMPTS[action].format(iid=iid)}</b>"
        self.confirm_button.description = f"Confirm {action}"
        show(self.confirm_box, True)

    @property
    def pending(self) -> tuple[str, str] | None:
        return self._pending

    def cancel(self) -> None:
        self._pending = None
        show(self.confirm_box, False)

    def confirm(self) -> threading.Thread | None:
        """Run the pending action in a worker thread, then refresh."""
        if self._pending is None:
            return None
        action, iid = self._pending
        self._pending = None
        show(self.confirm_box, False)
        if action != "terminate":  # a force offer belongs to the terminate it answered
            self._force_target = None
            show(self.force_box, False)
        self._set_message([f"{action} {iid}…"])
        calls: dict[str, Callable[[], Any]] = {
            "start": lambda: self.actions.start(self.ctx, iid, echo=self._echo),
            "stop": lambda: self.actions.stop(self.ctx, iid, echo=self._echo),
            "terminate": lambda: self.actions.terminate(self.ctx, iid, force=False, echo=self._echo),
        }
        return self._act(action, iid, calls[action])

    def force_terminate(self) -> threading.Thread | None:
        """The explicit override offered after the guard refused: terminate with force=True."""
        iid = self._force_target
        if iid is None:
            return None
        show(self.force_box, False)
        self._force_target = None
        self._set_message([f"force terminate {iid}…"])
        return self._act("force-terminate", iid,
                         lambda: self.actions.terminate(self.ctx, iid, force=True, echo=self._echo))

    def _act(self, action: str, iid: str, call: Callable[[], Any]) -> threading.Thread | None:
        def work() -> None:
            if self._ctx_error is not None:
                raise self._ctx_error
            inst = call()
            state = getattr(inst, "state", None)
            self._echo(f"{iid} is now {state}" if state else f"{action} {iid}: done")
            self._refresh_now()

        def on_error(exc: BaseException) -> bool:
            if isinstance(exc, GuardRefused) and action == "terminate":
                self._force_target = iid
                self.force_button.description = "Force terminate"
                self.force_button.tooltip = f"Terminate {iid} anyway: its checkpoints without an S3 copy are lost"
                self._set_message(exc.render(NOTEBOOK_PREFIX).splitlines(), GUARD_STYLE, css="runctl-guard")
                show(self.force_box, True)
                return True
            self.show_error(exc)
            self._refresh_now()
            return True

        return self.run_action(action, work, on_error)

    # --- messages -------------------------------------------------------------------------------

    def _echo(self, line: str) -> None:
        self._messages.append(line)
        self._render_message()

    def _set_message(self, lines: list[str], style: str = "", css: str = "") -> None:
        self._messages = list(lines)
        self._message_style = style
        self._message_class = css
        self._render_message()

    def _render_message(self) -> None:
        lines = self._messages[-MAX_MESSAGE_LINES:]
        self.message.value = pre("\n".join(lines), getattr(self, "_message_class", ""), self._message_style) \
            if lines else ""

    def show_error(self, exc: BaseException) -> None:
        self._set_message(error_text(exc).splitlines(), ERROR_STYLE, css="runctl-error")

    @property
    def message_text(self) -> str:
        """The plain text of the message area (what the last action said, or its error)."""
        return "\n".join(self._messages[-MAX_MESSAGE_LINES:])
