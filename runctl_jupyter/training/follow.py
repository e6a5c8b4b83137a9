"""Following a run: its log by byte offset (SSM tail, S3 catch-up far behind), its status, its end."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from .. import log_catchup, logs
from ..aws import ec2, ssm
from ..aws.session import Context
from ..errors import BackendError, SandboxNotRunning, Step, cmd
from ..remote.replies import StatusReply
from .runs import Echo, Fetch, InstanceEnded, Launch, TrainResult, _to_log, first_line, run_state, tag_run

LOCAL_LOG_POLL_S = 0.3  # a local run's log is a file on this machine


def tail_fetcher(ctx: Context, instance_id: str, log_path: str) -> Callable[[int, int], str]:
    env = ssm.remote_root_env(ctx)

    def fetch(offset: int, max_bytes: int) -> str:
        result = ssm.run(ctx, instance_id, "tail", [log_path, str(offset), str(max_bytes)], env)
        if result.exit_code != 0:
            raise BackendError(f"Could not read the log on {instance_id}: {first_line(result.stderr)}",
                               [cmd(f"aws status {instance_id}", "Check the instance")])
        return result.stdout

    return fetch


def _transient(exc: BaseException) -> bool:
    # Throttling and 5xx are retried inside botocore already; what reaches here after that is a
    # connection hiccup or an instance that went away.
    from botocore.exceptions import ConnectionError as BotoConnectionError

    return isinstance(exc, BotoConnectionError)


def _state_if_not_running(ctx: Context, instance_id: str) -> str | None:
    try:
        state = ec2.describe(ctx, instance_id).state
    except BackendError:
        return None  # cannot tell: the original error stands
    return None if state in ("pending", "running") else state


def follow_run(ctx: Context | None, launch: Launch, on_text: Callable[[str], Any], *,
               should_stop: Callable[[], bool] | None = None, start_offset: int = 0,
               from_line_start: bool = False, fetch: Fetch | None = None,
               echo: Echo | None = None) -> logs.FollowResult:
    """Follow a run's log by byte offset until it ends (``fetch`` overrides the SSM tail, e.g. local runs);
    far behind, catch up through S3 (log_catchup.py; ``echo`` hears once when it cannot)."""
    poll = ctx.pacing.log_poll if ctx is not None else LOCAL_LOG_POLL_S
    remote_ctx = ctx if fetch is None else None  # the log is on an instance, read over SSM
    catch_up = None
    if remote_ctx is not None:
        fetch = tail_fetcher(remote_ctx, launch.instance_id, launch.log_path)
        if remote_ctx.sandbox is not None:
            fetch = _while_the_sandbox_answers(fetch, launch, remote_ctx.sandbox.endpoint)
        catch_up = log_catchup.S3CatchUp(remote_ctx, launch.instance_id, launch.log_path, launch.project,
                                         launch.run_id, echo or _to_log)
    if fetch is None:
        raise ValueError("follow_run needs a context (a run on an instance) or a fetch (a local run)")
    try:
        return logs.follow(fetch, on_text, poll_interval=poll, is_transient=_transient, should_stop=should_stop,
                           start_offset=start_offset, from_line_start=from_line_start, catch_up=catch_up,
                           catch_up_bytes=log_catchup.CATCH_UP_BYTES)
    except SandboxNotRunning:
        raise  # no AWS call to ask about the instance: the world that held it is gone
    except BackendError as exc:
        state = _state_if_not_running(remote_ctx, launch.instance_id) if remote_ctx is not None else None
        if state is not None:  # stopped or terminated under the follower (`stop` elsewhere, the guardian)
            raise InstanceEnded(
                f"Run {launch.run_id}: instance {launch.instance_id} is {state}; the run ended with it.",
                [cmd(f"aws status {launch.instance_id}", "See the instance and its last run"),
                 cmd(f"aws checkpoints {launch.instance_id}", "See the checkpoints kept")],
                instance_state=state) from exc
        if "credential" in exc.message.lower() or "expired" in exc.message.lower():
            raise BackendError(
                f"Stopped following run {launch.run_id}: {exc.message} The training is unaffected.",
                [Step("Refresh your AWS credentials (`aws sso login`)"),
                 cmd(f"aws monitor {launch.instance_id} --follow", "Re-attach to the log")]) from exc
        raise


def _while_the_sandbox_answers(fetch: Fetch, launch: Launch, endpoint: str) -> Fetch:
    """Before each read, that the sandbox server still takes connections (on loopback a dead one
    refuses at once): a dead sandbox is said within a poll, not after ~2 minutes of retries."""
    from urllib.parse import urlsplit

    where = urlsplit(endpoint)

    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            socket.create_connection((where.hostname or "127.0.0.1", where.port or 80), timeout=2).close()
        except OSError as exc:
            raise SandboxNotRunning(
                f"The sandbox stopped while following run {launch.run_id} on {launch.instance_id}: the run's "
                "fate is unknown (a sandbox's instances and their processes end with its server).",
                [cmd("sandbox start", "Start a new sandbox (it says what was lost)"),
                 cmd("aws create t3.micro --wait", "Then create an instance and train again")]) from exc
        return fetch(*args, **kwargs)

    return checked


def finish_run(ctx: Context | None, launch: Launch, exit_code: int | None, tail: str) -> TrainResult:
    state = run_state(exit_code, tail)
    if ctx is not None:  # local runs have no instance to tag
        # a stopped run keeps the tag `stop` gave it (the guard and the cost table read it)
        tag_run(ctx, launch.instance_id, launch.run_id, "stopped" if state == "stopped" else f"exit {exit_code}")
    return TrainResult(launch.instance_id, launch.project, launch.run_id, state, exit_code, tail, launch.python)


def read_status(ctx: Context, instance_id: str, project: str, run_id: str | None = None) -> StatusReply:
    """One SSM command: the run's state and, from the same command, the instance's GPUs (status.sh)."""
    args = [project] + ([run_id] if run_id else [])
    result = ssm.run(ctx, instance_id, "status", args, ssm.remote_root_env(ctx))
    if result.exit_code != 0:
        raise BackendError(f"Could not read the run status on {instance_id}: {first_line(result.stderr)}",
                           [cmd(f"aws status {instance_id}", "Check the instance")])
    return StatusReply.parse(result.stdout)


def wait_for_exit(ctx: Context, launch: Launch, timeout_s: float = 600) -> StatusReply:
    """Poll status until the run has exited (for API users and tests)."""
    deadline = time.monotonic() + timeout_s
    while True:
        st = read_status(ctx, launch.instance_id, launch.project, launch.run_id)
        if st.state != "running" or time.monotonic() > deadline:
            return st
        time.sleep(ctx.pacing.run_poll)
