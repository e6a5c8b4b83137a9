"""One SSM command for every node of a fleet: the same script, arguments and environment sent once
(``SendCommand`` with all their instance IDs), each node's result polled concurrently.

Nodes that lack this version of runctl's scripts get them the same way (one install command for all
of them), then the command again for those nodes. SendCommand takes at most 50 instance IDs
(:data:`members.MAX_NODES`); AWS refuses the whole command when one of them cannot take commands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from .. import remote
from ..aws import ssm
from ..aws.session import Context
from ..errors import BackendError, Step, translate_aws_errors
from ..models import RemoteResult

MAX_POLL_WORKERS = 16


def _send(ctx: Context, instance_ids: Sequence[str], command: str, timeout_s: int, comment: str) -> str:
    with translate_aws_errors(f"send a command to {len(instance_ids)} nodes"):
        try:
            resp = ctx.client("ssm").send_command(
                InstanceIds=list(instance_ids), DocumentName="AWS-RunShellScript",
                Parameters=ssm.parameters(command, timeout_s), TimeoutSeconds=60, Comment=comment[:100])
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "InvalidInstanceId":
                raise NodesUnreachable(
                    f"Some of {', '.join(instance_ids)} cannot take commands now (not running, or their SSM agent "
                    "is not Online).", [Step("Check the fleet's nodes"),
                                        Step("Start the stopped ones (`aws start INSTANCE_ID --wait`), then retry")]
                ) from exc
            raise
    return str(resp["Command"]["CommandId"])


class NodesUnreachable(BackendError):
    """SendCommand refused: a node is not running (or its agent is not Online)."""


def _wait_all(ctx: Context, instance_ids: Sequence[str], command_id: str, timeout_s: int) -> dict[str, RemoteResult]:
    if len(instance_ids) == 1:
        return {instance_ids[0]: ssm.wait_result(ctx, instance_ids[0], command_id, timeout_s=timeout_s + 60)}
    with ThreadPoolExecutor(max_workers=min(MAX_POLL_WORKERS, len(instance_ids))) as pool:
        results = pool.map(lambda iid: ssm.wait_result(ctx, iid, command_id, timeout_s=timeout_s + 60), instance_ids)
        return dict(zip(instance_ids, results, strict=True))


def install(ctx: Context, instance_ids: Sequence[str]) -> None:
    """Put this version of runctl's scripts on the nodes: each install command sent once for all of them."""
    for command in remote.install_commands():
        command_id = _send(ctx, instance_ids, command, ssm.INSTALL_TIMEOUT_S,
                           f"runctl install scripts {remote.scripts_version()}")
        for iid, result in _wait_all(ctx, instance_ids, command_id, ssm.INSTALL_TIMEOUT_S).items():
            if result.status != "Success":
                raise ssm.install_failure(iid, result)


def run_all(ctx: Context, instance_ids: Sequence[str], script: str, args: Sequence[str] = (),
            env: Mapping[str, str] | None = None, timeout_s: int = ssm.DEFAULT_TIMEOUT_S) -> dict[str, RemoteResult]:
    """``remote/<script>.sh`` on every node with one SendCommand; each node's result."""
    ids = list(dict.fromkeys(instance_ids))
    command = remote.command_for(script, args, env)
    comment = f"runctl {script} ({len(ids)} nodes)"
    results = _wait_all(ctx, ids, _send(ctx, ids, command, timeout_s, comment), timeout_s)
    missing = [iid for iid, r in results.items() if remote.needs_install(r.exit_code, r.stdout)]
    if missing:
        install(ctx, missing)
        results.update(_wait_all(ctx, missing, _send(ctx, missing, command, timeout_s, comment), timeout_s))
    return results
