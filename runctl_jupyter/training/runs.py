"""A training run as values: its launch, its result, and the small rules every part of training shares
(which project an instance's run belongs to, the run's tags, how its end is named)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..aws import ec2
from ..aws.session import Context
from ..errors import BackendError, TrainingFailed, cmd
from ..models import Instance, validate_instance_id
from ..sync_scope import choose_project
from ..tag_keys import PROJECT_TAG, RUN_ID_TAG, RUN_STATE_TAG

Echo = Callable[[str], None]


def _quiet(_line: str) -> None:
    """Say nothing."""


def _to_log(line: str) -> None:
    """Where a note goes when the caller gave no echo: the backend never prints (logging does)."""
    logging.getLogger("runctl").warning(line)


@dataclass
class Launch:
    instance_id: str
    project: str
    run_id: str
    pid: int
    log_path: str
    synced: dict[str, str] = field(default_factory=dict)
    python: str = ""  # the interpreter that runs it (launch.sh's choice, with why)


@dataclass
class TrainResult:
    """The outcome of a run, as far as it is known when the call returns."""

    instance_id: str
    project: str
    run_id: str
    state: str                    # succeeded | failed | running | detached | stopped
    exit_code: int | None = None
    log_tail: str = ""
    python: str = ""  # the interpreter that ran it, when known

    def summary(self) -> str:
        code = "" if self.exit_code is None else f" (exit code {self.exit_code})"
        python = f"; python {self.python}" if self.python else ""
        return f"Run {self.run_id} on {self.instance_id}: {self.state}{code}{python}"

    to_shell_text = summary

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.summary())


class InstanceEnded(BackendError):
    """The instance stopped or terminated while its run's log was being followed."""

    def __init__(self, message: str, steps: list, *, instance_state: str) -> None:
        super().__init__(message, steps)
        self.instance_state = instance_state


Fetch = Callable[[int, int], str]


def project_name(ctx: Context, script: Path, explicit: str | None, instance_project: str | None = None) -> str:
    """--project, else the configured project, else the instance's (its runctl:project tag, so that
    `create --project X` then `train` agree), else the script's project folder."""
    return choose_project(explicit, ctx.settings.project, instance_project, script)


def new_run_id(ctx: Context) -> str:
    return ctx.now().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def running_instance(ctx: Context, instance_id: str, action: str) -> Instance:
    inst = ec2.describe(ctx, validate_instance_id(instance_id))
    ec2.refuse_unless_state(inst, "running", action)
    return inst


def project_for_instance(ctx: Context, inst: Instance, explicit: str | None) -> str:
    """The project a command about an instance's runs reads (the one rule: :func:`sync.choose_project`,
    from the current folder)."""
    return choose_project(explicit, ctx.settings.project, inst.project, Path.cwd())


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def tag_run(ctx: Context, instance_id: str, run_id: str, state: str, *, project: str | None = None) -> None:
    # the project tag follows the newest training: monitor, stop and the guards read it
    tags = {RUN_ID_TAG: run_id, RUN_STATE_TAG: state}
    if project:
        tags[PROJECT_TAG] = project
    ec2.set_tags(ctx, instance_id, tags)


# What launch.sh's wrapper writes into the log when the run is sent SIGTERM (`stop`, the guardian,
# an instance shutting down): the run ended because it was told to, whatever its exit code.
STOP_SIGNAL_LINE = "[runctl] received SIGTERM (stop requested)"


def run_state(exit_code: int | None, tail: str) -> str:
    """succeeded / failed / stopped, from the exit code and the last lines of the log."""
    if STOP_SIGNAL_LINE in tail:
        return "stopped"
    return "succeeded" if exit_code == 0 else "failed"


def failure(result: TrainResult) -> TrainingFailed:
    return TrainingFailed(
        f"Training run {result.run_id} on {result.instance_id} failed with exit code {result.exit_code}.",
        [cmd(f"aws monitor {result.instance_id} --run {result.run_id}", "Read its full log"),
         cmd(f"aws runs {result.instance_id}", "See the run history")],
        result=result, details=["Last lines of the log:", *[f"  {line}" for line in result.log_tail.splitlines()]])
