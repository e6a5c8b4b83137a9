"""Training runs, listings and storage, as the API: part of the :mod:`runctl_jupyter.api` façade, which
re-exports every name here. Each function returns values (dataclasses, DataFrames, text); following a
log reports through the ``on_text`` / ``echo`` callables the front end passes. Nothing here prints,
displays or draws a progress bar: that is the front ends' part (magics, shell, panels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import guardian, local, logs, training
from .aws.session import Context
from .errors import Step, TrainingFailed, UsageError, cmd
from .remote.replies import StatusReply
from .training import Fetch, InstanceEnded, Launch, TrainResult

Echo = Callable[[str], None]


def _quiet(_line: str) -> None:
    """The default echo: say nothing."""


# --- a run on an instance ------------------------------------------------------------------------

def train(ctx: Context, instance_id: str, script: str | Path, script_args: Sequence[str] = (), *,
          project: str | None = None, sync_code: bool = True, bucket: str | None = None,
          resume: str | None = None, project_root: str | Path | None = None, autostop: float | None = None,
          max_hours: float | None = None, max_cost: float | None = None, torchrun: bool = False,
          nproc_per_node: int | str | None = None, python: str | None = None, echo: Echo = _quiet) -> Launch:
    """Start ``script`` on the instance (claim → sync → launch) and return at once with its
    :class:`Launch`; ``autostop`` / ``max_hours`` / ``max_cost`` start the on-instance guardian.
    ``torchrun``: run it under PyTorch's launcher (``python -m torch.distributed.run --standalone``) with
    ``nproc_per_node`` processes (a number, or ``"gpu"``: one per GPU, the default); ``python``: the
    interpreter on the instance (default: the `python` setting, else the image's PyTorch environment,
    else python3). Follow it with :func:`follow_run`, or wait with :func:`wait_for_exit`."""
    if nproc_per_node is not None and not torchrun:
        raise UsageError("nproc_per_node only applies with torchrun.",
                         [cmd(f"aws train {instance_id} {script} --torchrun --nproc-per-node {nproc_per_node}",
                              "Add --torchrun")])
    nproc = str(nproc_per_node if nproc_per_node is not None else "gpu") if torchrun else None
    if nproc is not None and nproc != "gpu" and not (nproc.isdigit() and 0 < int(nproc) <= 1024):
        raise UsageError(f"nproc_per_node must be a number of processes (1-1024) or 'gpu', not {nproc!r}.",
                         [Step("For example --nproc-per-node 8, or --nproc-per-node gpu (one per GPU)")])
    request = (guardian.Request(autostop_s=autostop, max_hours=max_hours, max_cost=max_cost)
               if autostop or max_hours or max_cost else None)
    launch = training.start_training(ctx, instance_id, script, script_args, project=project, sync_code=sync_code,
                                     bucket=bucket, resume=resume, echo=echo, guardian_request=request,
                                     project_root_dir=project_root, python=python, torchrun=nproc)
    guardian.after_launch(ctx, launch.instance_id, launch.run_id)
    return launch


def follow_run(ctx: Context | None, launch: Launch, on_text: Callable[[str], Any], *,
               should_stop: Callable[[], bool] | None = None, start_offset: int = 0,
               from_line_start: bool = False, fetch: Fetch | None = None,
               echo: Echo | None = None) -> logs.FollowResult:
    """Hand the run's log to ``on_text`` as it grows, until the run ends or ``should_stop()``; raises
    :class:`InstanceEnded` when the instance stops or terminates under it (``ctx`` None: a local run,
    read through ``fetch``)."""
    return training.follow_run(ctx, launch, on_text, should_stop=should_stop, start_offset=start_offset,
                               from_line_start=from_line_start, fetch=fetch, echo=echo)


def finish_run(ctx: Context | None, launch: Launch, exit_code: int | None, tail: str) -> TrainResult:
    """The run's :class:`TrainResult` once its log ended (and its run-state tag, on an instance)."""
    return training.finish_run(ctx, launch, exit_code, tail)


def run_failure(result: TrainResult, launch: Launch | None = None) -> TrainingFailed:
    """The error a failed run raises (a local run's steps are shell commands, not runctl ones)."""
    if launch is not None and launch.instance_id == "local":
        return local.failure(result, launch)
    return training.failure(result)


def wait_for_exit(ctx: Context, launch: Launch, timeout_s: float = 600) -> StatusReply:
    """Poll the run's status until it has exited (or ``timeout_s``); its last status."""
    return training.wait_for_exit(ctx, launch, timeout_s)


@dataclass
class RunInfo:
    """What ``monitor`` knows of an instance's latest (or named) run before reading its log."""

    launch: Launch
    state: str          # running | exited
    shown_state: str    # running | stopped | exited
    exit_code: int | None  # None while running, or when the run is lost
    log_size: int
    world: str
    lost: bool = False     # its process is gone without recording an exit code

    def header(self) -> str:
        text = f"[{self.world}] Run {self.launch.run_id} on {self.launch.instance_id}: {self.shown_state}"
        if self.lost:
            return text + " (no exit code: its process ended without recording one; killed, or the instance rebooted)"
        return text + (f" (exit code {self.exit_code})" if self.state == "exited" else "")

    @classmethod
    def of(cls, launch: Launch, status: StatusReply, world: str) -> RunInfo:
        return cls(launch, status.state, status.shown_state, status.exit_code, status.log_size, world, status.lost)


def run_info(ctx: Context, instance_id: str, project: str | None = None, run_id: str | None = None) -> RunInfo | None:
    """The instance's latest run of the project (or run ``run_id``); None when it has none."""
    inst = training.runs.running_instance(ctx, instance_id, "read its training log")
    project = training.project_for_instance(ctx, inst, project)
    st = training.read_status(ctx, instance_id, project, run_id)
    if run_id and st.state == "none":
        raise UsageError(f"No run {run_id} of project {project} on {instance_id}.",
                         [cmd(f"aws runs {instance_id} --project {project}", "List the runs there"),
                          Step("Pass --project NAME when the run belongs to another project")])
    if st.state == "none" or not st.run_id:
        return None
    # st.log is absolute (status.sh): SSM runs each command in a folder of its own
    launch = Launch(instance_id, project, st.run_id, st.pid, st.log, python=st.python)
    return RunInfo.of(launch, st, ctx.world().label())


def no_runs_line(ctx: Context, instance_id: str, project: str | None = None) -> str:
    inst = training.runs.running_instance(ctx, instance_id, "read its training log")
    return (f"[{ctx.world().label()}] No training runs for project "
            f"{training.project_for_instance(ctx, inst, project)} on {instance_id}.")


def run_log(ctx: Context, info: RunInfo, start: int, echo: Echo = _quiet) -> str:
    """Bytes ``start``… of the run's log as it was when ``info`` was read (S3 when far behind)."""
    from . import log_catchup

    launch = info.launch
    return log_catchup.read_range(
        training.tail_fetcher(ctx, launch.instance_id, launch.log_path),
        log_catchup.S3CatchUp(ctx, launch.instance_id, launch.log_path, launch.project, launch.run_id, echo),
        start, info.log_size)


def checkpoints(ctx: Context, instance_id: str, project: str | None = None):
    """The project's checkpoints on the instance and in S3 (with verified copies), as a DataFrame."""
    return training.checkpoints_frame(ctx, instance_id, project)


def runs(ctx: Context, instance_id: str, project: str | None = None):
    """The project's runs on the instance, newest first, as a DataFrame."""
    return training.runs_frame(ctx, instance_id, project)


# --- local runs ------------------------------------------------------------------------------------

def local_train(script: str | Path, script_args: Sequence[str] = (), project: str | None = None) -> Launch:
    """Start the script on this machine with the same launcher; follow it with ``follow_run(None, launch,
    …, fetch=local_log(launch))``."""
    return local.start(script, list(script_args), project)


def local_log(launch: Launch) -> Fetch:
    return local.fetcher(launch.log_path)


def local_follow_hint(launch: Launch) -> str:
    return local.follow_hint(launch)


# --- resources, costs and storage -------------------------------------------------------------------

def resources(ctx: Context, *, regions: str | None = None, all_regions: bool = False, state: str | None = None,
              project: str | None = None, sort: str = "cost", verb: str = "list"):
    """Every runctl instance (and its volumes, snapshots) with its cost so far, as a DataFrame."""
    from . import resources as listing

    state = None if state is None else listing.check_state(state, verb)
    return listing.list_frame(ctx, regions=regions, all_regions=all_regions, state=state, project=project,
                              sort=sort)


SUMMARY_KEYS = ("instance_type", "project", "state", "region", "lifecycle", "fleet")


def resources_summary(ctx: Context, df: Any, by: Sequence[str]):
    """``df`` (from :func:`resources`) summed by ``by``, with what S3 storage costs as a footer."""
    from .costs import summary
    from .storage import summary_line

    bad = [b for b in by if b not in SUMMARY_KEYS]
    if bad:
        raise UsageError(f"Cannot group by {', '.join(bad)}.",
                         [Step("Use instance_type, project, state, region, lifecycle or fleet"),
                          cmd("resources summary --by project", "For example")])
    result = summary(df, by=list(by))
    result.attrs["runctl_kind"] = "summary"
    result.attrs["runctl_caption"] = f"Cost summary by {', '.join(by)} ({df.attrs['runctl_caption_info'].world})"
    storage = summary_line(ctx)  # what the bucket's runctl/ prefix costs per month
    result.attrs["runctl_footer"] = [storage] if storage else []
    return result


def cost_plot(df: Any):
    """A matplotlib Figure of the costs in ``df`` (no pyplot backend needed)."""
    from .costs.plot import plot

    return plot(df)


def export(df: Any, fmt: str, target: str | Path) -> Path:
    """Write ``df`` as csv/json/parquet/html; the path written."""
    from .costs import export as write

    return write(df, fmt, target)


def hourly_price(ctx: Context, instance_id: str) -> tuple[float | None, str]:
    """The instance's on-demand $/hr (None when unknown) and a short description of it."""
    from .aws import ec2
    from .models import validate_instance_id
    from .resources import price_book

    inst = ec2.describe(ctx, validate_instance_id(instance_id))  # its type and region: no SSM call
    quote = price_book(ctx).on_demand(inst.region, inst.instance_type)
    return quote.usd_per_hour, f"{inst.instance_type} on-demand, {quote.source}"


def storage(ctx: Context, project: str | None = None, bucket: str | None = None, *, prefix: str = "runctl"):
    """What runctl keeps in S3 (code bundles, checkpoint copies, logs, open uploads) and its cost."""
    from . import storage as s3_usage

    return s3_usage.list_frame(ctx, project, bucket, prefix=prefix)


def storage_prune(ctx: Context, project: str | None = None, keep: int | None = None, *, yes: bool = False,
                  bucket: str | None = None, prefix: str = "runctl", echo: Echo = _quiet):
    """Delete old code bundles (and open multipart uploads), keeping the newest ``keep``; a dry run
    unless ``yes``."""
    from . import storage as s3_usage

    return s3_usage.prune(ctx, project, s3_usage.DEFAULT_KEEP if keep is None else keep, yes=yes, bucket=bucket,
                          prefix=prefix, echo=echo)


__all__ = [
    "Fetch", "InstanceEnded", "Launch", "RunInfo", "SUMMARY_KEYS", "StatusReply", "TrainResult", "checkpoints", "cost_plot",
    "export", "finish_run", "follow_run", "hourly_price", "local_follow_hint", "local_log", "local_train",
    "no_runs_line", "resources", "resources_summary", "run_failure", "run_info", "run_log", "runs", "storage",
    "storage_prune", "train", "wait_for_exit",
]
