"""The subcommand router shared by ``%runctl`` and the ``runctl`` shell command.

Each handler takes the parsed :class:`Command`, the :class:`Frontend` (prefix + how to echo and
display) and returns the value the magic returns (the shell prints it). Handlers stay thin: they
pick options off the command and call :mod:`runctl_jupyter.api`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import api, fleet_view, follow_view
from .errors import Hint, UsageError, cmd
from .grammar import Command


@dataclass
class Frontend:
    prefix: str                      # "%runctl" in a notebook, "runctl" in a shell
    echo: Callable[[str], None]      # a progress / info line
    notebook: bool = False
    magic_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A Hint names runctl commands without prefix: shown with this front end's.
        raw, prefix = self.echo, self.prefix

        def echo(line: str) -> None:
            raw(line.render(prefix) if isinstance(line, Hint) else line)

        self.echo = echo


def _flags(c: Command) -> dict[str, Any]:
    return {"region": getattr(c.options, "region", None), "profile": getattr(c.options, "profile", None),
            "project": getattr(c.options, "project", None), "bucket": getattr(c.options, "bucket", None)}


def _ctx(c: Command, fe: Frontend):
    return api.context(flags=_flags(c), magic=fe.magic_config)


# --- aws ------------------------------------------------------------------------------------------

def _create(c: Command, fe: Frontend) -> str:
    if c.max_price is not None and not c.spot:
        raise UsageError("--max-price only applies to spot instances.",
                         [cmd(f"aws create {c.instance_type} --spot --max-price {c.max_price}", "Add --spot")])
    ctx = _ctx(c, fe)
    inst = api.create(ctx, c.instance_type, wait=c.wait, project=c.project, echo=fe.echo, ami=c.ami,
                      name=c.name, iam_instance_profile=c.iam_instance_profile, key_name=c.key_name,
                      security_groups=c.security_group or (), subnet=c.subnet, disk_gb=c.disk_gb,
                      spot=c.spot, max_price=c.max_price, fallback_on_demand=c.fallback_on_demand,
                      from_snapshot=c.from_snapshot)
    return inst.instance_id


def _status(c: Command, fe: Frontend):
    return api.status(_ctx(c, fe), c.instance_id)


def _start(c: Command, fe: Frontend):
    api.start(_ctx(c, fe), c.instance_id, wait=c.wait, echo=fe.echo)


def _stop(c: Command, fe: Frontend):
    api.stop(_ctx(c, fe), c.instance_id, force=c.force, wait=c.wait, echo=fe.echo)


def _terminate(c: Command, fe: Frontend):
    api.terminate(_ctx(c, fe), c.instance_id, force=c.force, wait=c.wait, snapshot=c.snapshot, echo=fe.echo)


def _wait(c: Command, fe: Frontend):
    api.wait(_ctx(c, fe), c.instance_id, c.state, echo=fe.echo)


def _train(c: Command, fe: Frontend):
    return follow_view.train_command(_ctx(c, fe), c, fe)


def _monitor(c: Command, fe: Frontend):
    return follow_view.monitor_command(_ctx(c, fe), c, fe)


def _checkpoints(c: Command, fe: Frontend):
    return api.checkpoints(_ctx(c, fe), c.instance_id, project=c.project)


def _runs(c: Command, fe: Frontend):
    return api.runs(_ctx(c, fe), c.instance_id, project=c.project)


# --- resources -------------------------------------------------------------------------------------

def _resources(c: Command, fe: Frontend):
    ctx = _ctx(c, fe)
    verb = c.path[1]
    df = api.resources(ctx, regions=c.regions, all_regions=c.all_regions, state=c.state_filter, project=c.project,
                       sort=getattr(c, "sort", "cost"), verb=verb)
    result = df
    if verb == "summary":
        result = api.resources_summary(ctx, df, [b.strip() for b in c.by.split(",")])
        if c.plot:
            _show_plot(api.cost_plot(df), c, fe)
    if c.export:
        written = api.export(result, c.export, c.export_file or f"runctl-{verb}.{c.export}")
        fe.echo(f"Exported {len(result)} row(s) to {written}")
    return result


def _show_plot(figure: Any, c: Command, fe: Frontend) -> None:
    if fe.notebook:
        import io

        from IPython.display import Image, display

        png = io.BytesIO()
        figure.savefig(png, format="png", bbox_inches="tight")  # no pyplot backend needed
        display(Image(png.getvalue()))
        return
    path = Path(c.export_file or "runctl-costs.png").with_suffix(".png")
    figure.savefig(path)
    fe.echo(f"Plot written to {path}")


def _storage(c: Command, fe: Frontend):
    ctx = _ctx(c, fe)
    project, bucket = getattr(c, "project", None), getattr(c, "bucket", None)
    if c.path[1] == "prune":
        return api.storage_prune(ctx, project, c.keep, yes=c.yes, bucket=bucket, prefix=fe.prefix, echo=fe.echo)
    return api.storage(ctx, project, bucket, prefix=fe.prefix)


# --- local / panel -------------------------------------------------------------------------------

def _local_train(c: Command, fe: Frontend):
    return follow_view.local_train_command(c, fe)


def _panel(c: Command, fe: Frontend):
    if not fe.notebook:
        raise UsageError("Panels are widgets: they need a notebook.",
                         [cmd("resources list", "In a shell, use the table instead")])
    from . import widgets

    if c.kind == "train":
        if not c.instance_id:
            raise UsageError("`panel train` needs an instance ID.", [cmd("panel train INSTANCE_ID")])
        return widgets.TrainingPanel(c.instance_id, magic_config=fe.magic_config)
    return widgets.ResourcesPanel(refresh_seconds=c.refresh, magic_config=fe.magic_config)


# --- sandbox / config --------------------------------------------------------------------------------

def _sandbox(c: Command, fe: Frontend):
    verb = c.path[1]
    if verb == "start":
        api.sandbox_start(c.dir, fresh=c.fresh, freeze_clock=c.freeze_clock, echo=fe.echo, in_kernel=fe.notebook)
        return None
    if verb == "stop":
        api.sandbox_stop(c.dir, echo=fe.echo)
        return None
    if verb == "status":
        return api.sandbox_status(c.dir)
    if verb == "age":
        return api.sandbox_age(c.instance_id, c.hours, echo=fe.echo)
    if verb == "interrupt":
        return api.sandbox_interrupt(c.instance_id, c.notice_seconds, echo=fe.echo)
    if verb == "clock":
        api.sandbox_clock(c.freeze, c.advance, c.unfreeze, echo=fe.echo)
        return None
    raise AssertionError(verb)


def _config(c: Command, fe: Frontend):
    if c.path[1] == "set":
        path, kept = api.config_set(c.name, c.value)
        if kept is not None:
            fe.echo(f"{path} could not be read: it is kept as {kept}, and a fresh file was started")
        fe.echo(f"Set {c.name} = {c.value!r} in {path}")
        return None
    if c.path[1] == "unset":
        for line in api.config_unset(c.name).messages():
            fe.echo(line)
        return None
    rows = api.config_show(_ctx(c, fe))
    width = max(len(name) for name, _, _ in rows)
    return ConfigView("\n".join(f"{name:<{width}}  {'-' if value is None else value!s:<24}  ({source})"
                                 for name, value, source in rows))


class ConfigView(str):
    """Plain text that IPython shows without quotes."""

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


HANDLERS: dict[tuple[str, ...], Callable[[Command, Frontend], Any]] = {
    ("aws", "create"): _create,
    ("aws", "status"): _status,
    ("aws", "start"): _start,
    ("aws", "stop"): _stop,
    ("aws", "terminate"): _terminate,
    ("aws", "wait"): _wait,
    ("aws", "train"): _train,
    ("aws", "monitor"): _monitor,
    ("aws", "checkpoints"): _checkpoints,
    ("aws", "runs"): _runs,
    ("resources", "list"): _resources,
    ("resources", "summary"): _resources,
    ("storage", "list"): _storage,
    ("storage", "prune"): _storage,
    ("local", "train"): _local_train,
    ("panel",): _panel,
    ("config", "show"): _config,
    ("config", "set"): _config,
    ("config", "unset"): _config,
    **fleet_view.HANDLERS,
}


def run(c: Command, fe: Frontend) -> Any:
    if c.path[0] == "sandbox":
        return _sandbox(c, fe)
    return HANDLERS[c.path](c, fe)
