"""What both panels share: the registry, background threads, busy state, error text.

A panel is an ``ipywidgets.VBox``. Its background threads (auto-refresh, log follower, actions)
are daemon threads named ``runctl-panel-<kind>-<key>-<purpose>`` that watch the panel's stop
event. Creating a panel of the same kind and key (re-running its cell) stops the older panel's
threads; closing a panel (``close()`` or its comm closed by the front end) stops them too.
"""

from __future__ import annotations

import html
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import ipywidgets as widgets

from ..errors import NOTEBOOK_PREFIX, RunctlError
from ._actions import PanelActions

log = logging.getLogger(__name__)

THREAD_PREFIX = "runctl-panel-"

_REGISTRY: dict[tuple[str, str], PanelBase] = {}
_REGISTRY_LOCK = threading.Lock()


def registered(kind: str, key: str) -> PanelBase | None:
    """The live panel of this kind and key, if any."""
    with _REGISTRY_LOCK:
        return _REGISTRY.get((kind, key))


def panel_threads(kind: str | None = None, key: str | None = None) -> list[threading.Thread]:
    """Live panel threads (optionally only those of one kind / key)."""
    prefix = THREAD_PREFIX + (f"{kind}-" if kind else "") + (f"{key}-" if kind and key is not None else "")
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def error_text(exc: BaseException) -> str:
    """An error as the panel shows it: runctl's compact rendering, never a traceback."""
    if isinstance(exc, RunctlError):
        return exc.render(NOTEBOOK_PREFIX)
    return f"Error: {type(exc).__name__}: {exc}"


def pre(text: str, css_class: str = "", style: str = "") -> str:
    cls = f" class='{css_class}'" if css_class else ""
    return (f"<pre{cls} style='margin:0;white-space:pre-wrap;font-size:12px;{style}'>"
            f"{html.escape(text)}</pre>")


ERROR_STYLE = "border-left:3px solid #c62828;padding:4px 8px;background:#fff3f3;color:#5b0000;"
GUARD_STYLE = "border-left:3px solid #ef6c00;padding:4px 8px;background:#fff8e1;color:#4e2a00;"


def show(widget: widgets.DOMWidget, visible: bool) -> None:
    widget.layout.display = None if visible else "none"


class PanelBase(widgets.VBox):
    """A VBox with a registry slot, tracked worker threads and a busy state for its buttons."""

    kind: ClassVar[str] = "panel"

    def __init__(self, key: str, *, actions: PanelActions | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.panel_key = key
        self.actions = actions or PanelActions()
        self._stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._busy = False
        self._busy_lock = threading.Lock()
        self.add_class("runctl-panel")
        self.add_class(f"runctl-{self.kind}-panel")
        for cls in ("tex2jax_ignore", "mathjax_ignore"):  # "$0.01 … $5" is money, not a formula
            self.add_class(cls)
        self.observe(self._on_comm_changed, names="comm")
        self._watch_comm(self.comm)

    def _open_context(self, ctx: Any, magic_config: Any) -> None:
        """``self.ctx``: the given one, else one from the config; a config error is kept in
        ``self._ctx_error`` and shown in the panel (not raised from the constructor)."""
        self.ctx = ctx
        self._ctx_error: BaseException | None = None
        if ctx is None:
            try:
                self.ctx = self.actions.context(magic_config)
            except Exception as exc:
                self._ctx_error = exc

    # --- registry -------------------------------------------------------------------------------

    def _register(self) -> PanelBase | None:
        """Take this kind+key's slot; the previous holder's threads are stopped. Returns it."""
        with _REGISTRY_LOCK:
            old = _REGISTRY.get((self.kind, self.panel_key))
            _REGISTRY[(self.kind, self.panel_key)] = self
        if old is not None and old is not self:
            old.stop_threads()
        return old

    def _unregister(self) -> None:
        with _REGISTRY_LOCK:
            if _REGISTRY.get((self.kind, self.panel_key)) is self:
                del _REGISTRY[(self.kind, self.panel_key)]

    # --- threads --------------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """True once the panel was closed or replaced: its threads end and start no more."""
        return self._stop_event.is_set()

    def spawn(self, purpose: str, target: Callable[[], Any]) -> threading.Thread | None:
        """Run ``target`` in a tracked daemon thread (nothing once the panel is stopped)."""
        if self.stopped:
            return None
        thread = threading.Thread(target=self._guarded(target), daemon=True,
                                  name=f"{THREAD_PREFIX}{self.kind}-{self.panel_key}-{purpose}")
        with self._threads_lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return thread

    def _guarded(self, target: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # a thread cannot raise into a cell: show it in the panel
                log.debug("panel thread failed", exc_info=True)
                self.show_error(exc)

        return run

    @property
    def threads(self) -> list[threading.Thread]:
        with self._threads_lock:
            return [t for t in self._threads if t.is_alive()]

    def join(self, timeout: float = 30.0) -> bool:
        """Wait (bounded) for this panel's threads; True when none is left running."""
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        return not [t for t in self.threads if t is not threading.current_thread()]

    def stop_threads(self) -> None:
        """Ask every background thread of this panel to end (they check the stop event)."""
        self._stop_event.set()
        self._unregister()
        self._on_stop()

    def _on_stop(self) -> None:
        """Subclasses wake their own waits here."""

    def close(self) -> None:
        """Stop the background threads, then close the widget (its views disappear)."""
        if hasattr(self, "_stop_event"):
            self.stop_threads()
        super().close()

    def _on_comm_changed(self, change: dict[str, Any]) -> None:
        if change["new"] is None:
            self.stop_threads()
        else:
            self._watch_comm(change["new"])

    def _watch_comm(self, comm: Any) -> None:
        on_close = getattr(comm, "on_close", None)
        if on_close is not None:
            on_close(lambda _msg=None: self.stop_threads())

    # --- busy state -----------------------------------------------------------------------------

    def action_buttons(self) -> Iterable[widgets.Button]:
        return ()

    def _update_buttons(self) -> None:
        for button in self.action_buttons():
            button.disabled = self._busy

    @property
    def busy(self) -> bool:
        return self._busy

    def run_action(self, purpose: str, work: Callable[[], Any],
                   on_error: Callable[[BaseException], bool] | None = None) -> threading.Thread | None:
        """Run a long action in a worker thread with the buttons disabled; errors go to the panel.

        ``on_error(exc)`` may handle an error itself (return True), e.g. the terminate guard.
        """
        with self._busy_lock:
            if self._busy or self.stopped:
                return None
            self._busy = True
        self._update_buttons()

        def body() -> None:
            try:
                work()
            except Exception as exc:
                if on_error is None or not on_error(exc):
                    log.debug("panel action failed", exc_info=True)
                    self.show_error(exc)
            finally:
                with self._busy_lock:
                    self._busy = False
                self._update_buttons()

        thread = self.spawn(purpose, body)
        if thread is None:
            with self._busy_lock:
                self._busy = False
            self._update_buttons()
        return thread

    def show_error(self, exc: BaseException) -> None:
        raise NotImplementedError
