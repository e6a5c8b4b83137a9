"""What a panel does, as plain calls into the Python API (injectable for tests).

The panels hold no logic of their own: every action is one of these callables. The defaults call
:mod:`runctl_jupyter.api` (imported lazily); tests may pass a :class:`PanelActions` with some of them replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api import Context


def _list_frame(ctx: Context, **filters: Any) -> Any:
    from .. import api

    return api.resources(ctx, **filters)


def _start(ctx: Context, instance_id: str, **kw: Any) -> Any:
    from .. import api

    return api.start(ctx, instance_id, **kw)


def _stop(ctx: Context, instance_id: str, **kw: Any) -> Any:
    from .. import api

    return api.stop(ctx, instance_id, **kw)


def _terminate(ctx: Context, instance_id: str, **kw: Any) -> Any:
    from .. import api

    return api.terminate(ctx, instance_id, **kw)


def _start_training(ctx: Context, instance_id: str, script: str, script_args: list[str], **kw: Any) -> Any:
    from .. import api

    return api.train(ctx, instance_id, script, script_args, **kw)


def _follow_run(ctx: Context, launch: Any, on_text: Callable[[str], Any], **kw: Any) -> Any:
    from .. import api

    return api.follow_run(ctx, launch, on_text, **kw)


def _finish_run(ctx: Context, launch: Any, exit_code: int | None, tail: str) -> Any:
    from .. import api

    return api.finish_run(ctx, launch, exit_code, tail)


def _run_info(ctx: Context, instance_id: str, project: str | None = None) -> Any:
    """The instance's latest run (``api.RunInfo``: its launch, state, log size), None when it has none."""
    from .. import api

    return api.run_info(ctx, instance_id, project)


def _hourly_price(ctx: Context, instance_id: str) -> tuple[float | None, str]:
    """The instance's on-demand $/hr (None when unknown) and a short description of it."""
    from .. import api

    return api.hourly_price(ctx, instance_id)


def _make_context(magic_config: dict[str, Any] | None) -> Any:
    from .. import api

    return api.context(magic=magic_config)


@dataclass
class PanelActions:
    """The API calls a panel makes. Replace any of them to test a panel without AWS."""

    context: Callable[[dict[str, Any] | None], Any] = _make_context
    list_frame: Callable[..., Any] = _list_frame
    start: Callable[..., Any] = _start
    stop: Callable[..., Any] = _stop
    terminate: Callable[..., Any] = _terminate
    start_training: Callable[..., Any] = _start_training
    follow_run: Callable[..., Any] = _follow_run
    finish_run: Callable[..., Any] = _finish_run
    hourly_price: Callable[[Any, str], tuple[float | None, str]] = _hourly_price
    run_info: Callable[..., Any] = _run_info
