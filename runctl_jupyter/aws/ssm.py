"""Remote commands through SSM ``AWS-RunShellScript``: send one packaged script, poll its result.

SSM has a waiter (``command_executed``) but its whole-second delays would make every remote step
and every log poll at least a second slower, so this module polls ``GetCommandInvocation`` itself
with a short, growing delay. Transient failures (throttling, 5xx) are retried by botocore's retry
mode; ``InvocationDoesNotExist`` right after SendCommand is AWS's eventual consistency, handled here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence

from .. import remote
from ..errors import BackendError, Step, cmd, translate_aws_errors
from ..models import RemoteResult
from ..remote import command_for
from .session import Context

TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut", "Cancelling", "Undeliverable", "Terminated"}
DEFAULT_TIMEOUT_S = 600
INSTALL_TIMEOUT_S = 60
# AWS: a command's document content with its runtime parameters may not exceed 64 KB
MAX_COMMAND_BYTES = 64 * 1024


def parameters(command: str, timeout_s: int = DEFAULT_TIMEOUT_S) -> dict[str, list[str]]:
    return {"commands": [command], "executionTimeout": [str(timeout_s)]}


def command_bytes(command: str, timeout_s: int = DEFAULT_TIMEOUT_S) -> int:
    """The size SendCommand's 64 KB limit applies to: the parameters as JSON."""
    return len(json.dumps(parameters(command, timeout_s), separators=(",", ":")).encode("utf-8"))


def send(ctx: Context, instance_id: str, script: str, args: Sequence[str] = (),
         env: Mapping[str, str] | None = None, timeout_s: int = DEFAULT_TIMEOUT_S, stdin: str | None = None) -> str:
    """Send ``remote/<script>.sh`` with quoted args; returns the command ID."""
    return _send_command(ctx, instance_id, command_for(script, args, env, stdin=stdin), timeout_s,
                         f"runctl {script}", f"send a command to {instance_id}")


def _send_command(ctx: Context, instance_id: str, command: str, timeout_s: int, comment: str, action: str) -> str:
    """The one SendCommand runctl makes (AWS-RunShellScript, the execution timeout, AWS errors translated)."""
    with translate_aws_errors(action, instance_id):
        try:
            resp = ctx.client("ssm").send_command(
                InstanceIds=[instance_id],
                DocumentName="AWS-RunShellScript",
                Parameters=parameters(command, timeout_s),
                TimeoutSeconds=60,
                Comment=comment[:100],
            )
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code == "InvalidInstanceId":
                raise BackendError(
                    f"Instance {instance_id} cannot take commands now (not running, or its SSM agent is not Online).",
                    [cmd(f"aws status {instance_id}", "Check its state"),
                     cmd(f"aws start {instance_id} --wait", "Start it and wait for SSM"),
                     Step("On AWS: the instance needs the SSM agent and an instance profile (README)")],
                ) from exc
            raise
    return resp["Command"]["CommandId"]


def wait_result(ctx: Context, instance_id: str, command_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                sleep: Callable[[float], None] = time.sleep) -> RemoteResult:
    client = ctx.client("ssm")
    delay = ctx.pacing.ssm_first_poll
    deadline = time.monotonic() + timeout_s
    while True:
        sleep(delay)
        delay = min(delay * 1.6, 2.0)
        with translate_aws_errors(f"read a command's result from {instance_id}", instance_id):
            try:
                inv = client.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
            except Exception as exc:
                if getattr(exc, "response", {}).get("Error", {}).get("Code") == "InvocationDoesNotExist":
                    inv = {"Status": "Pending"}
                else:
                    raise
        status = inv.get("Status", "Pending")
        if status in TERMINAL:
            return RemoteResult(
                instance_id=instance_id,
                command_id=command_id,
                status=status,
                exit_code=int(inv.get("ResponseCode", -1)),
                stdout=inv.get("StandardOutputContent", ""),
                stderr=inv.get("StandardErrorContent", ""),
            )
        if time.monotonic() > deadline:
            raise BackendError(
                f"A command on {instance_id} did not finish within {int(timeout_s)} s.",
                [cmd(f"aws status {instance_id}", "Check the instance"), Step("Run the command again")],
            )


def run(ctx: Context, instance_id: str, script: str, args: Sequence[str] = (),
        env: Mapping[str, str] | None = None, timeout_s: int = DEFAULT_TIMEOUT_S,
        stdin: str | None = None) -> RemoteResult:
    """One SSM round trip: send the script, wait for its result. The first command a version of
    runctl sends an instance finds its scripts missing: they are installed (one more round trip),
    and the command is sent again."""
    command_id = send(ctx, instance_id, script, args, env, timeout_s, stdin)
    result = wait_result(ctx, instance_id, command_id, timeout_s=timeout_s + 60)
    if remote.needs_install(result.exit_code, result.stdout):
        install_scripts(ctx, instance_id)
        command_id = send(ctx, instance_id, script, args, env, timeout_s, stdin)
        result = wait_result(ctx, instance_id, command_id, timeout_s=timeout_s + 60)
    return result


def install_scripts(ctx: Context, instance_id: str) -> None:
    """Put this version of runctl's scripts on the instance (checked against their SHA-256 sums)."""
    for command in remote.install_commands():
        command_id = _send_command(ctx, instance_id, command, INSTALL_TIMEOUT_S,
                                   f"runctl install scripts {remote.scripts_version()}",
                                   f"install runctl's scripts on {instance_id}")
        result = wait_result(ctx, instance_id, command_id, timeout_s=INSTALL_TIMEOUT_S + 60)
        if result.status != "Success":
            raise install_failure(instance_id, result)


def install_failure(instance_id: str, result: RemoteResult) -> BackendError:
    """The error when an install command did not succeed on ``instance_id`` (a fleet's node too)."""
    return BackendError(
        f"runctl could not install its scripts on {instance_id} ({result.status}, exit "
        f"{result.exit_code}: {(result.stderr or result.stdout).strip()[-200:] or 'no output'}).",
        [cmd(f"aws status {instance_id}", "Check the instance (disk full? /var/lib writable?)"),
         Step("Run the command again")])


def remote_root_env(ctx: Context) -> dict[str, str]:
    """RUNCTL_ROOT for the scripts: the sandbox sets it per instance. On AWS (commands run as root with
    no HOME) the scripts find the image's login user themselves (ec2-user, ubuntu…; common.sh
    login_home) unless ``remote_user`` was set, and the training runs as that user."""
    if ctx.is_sandbox or ctx.settings.sources.get("remote_user", "default") == "default":
        return {}
    return {"RUNCTL_ROOT": f"/home/{ctx.settings.remote_user}"}
