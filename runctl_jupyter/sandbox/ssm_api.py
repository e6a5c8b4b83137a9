"""The SSM actions the sandbox answers itself (moto's SendCommand executes nothing).

SendCommand, GetCommandInvocation, ListCommands, ListCommandInvocations, CancelCommand,
DescribeInstanceInformation. Everything else (GetParameter…) goes on to moto.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Response

from . import moto_seams
from .protocol import AwsRequest, json_error, json_response
from .ssm_exec import Command, CommandStore, Runner, invocation_view
from .world import World

RUN_SHELL = "AWS-RunShellScript"


MAX_COMMAND_BYTES = 64 * 1024


class SsmApi:
    def __init__(self, world: World) -> None:
        self.world = world
        self.store = CommandStore()
        self.runner = Runner(world, self.store)
        self.actions: dict[str, Callable[[AwsRequest], Response]] = {
            "SendCommand": self.send_command,
            "GetCommandInvocation": self.get_command_invocation,
            "ListCommands": self.list_commands,
            "ListCommandInvocations": self.list_command_invocations,
            "CancelCommand": self.cancel_command,
            "DescribeInstanceInformation": self.describe_instance_information,
        }

    def handle(self, req: AwsRequest) -> Response | None:
        handler = self.actions.get(req.action or "")
        return handler(req) if handler else None

    # --- helpers -------------------------------------------------------------------------------

    def _online(self, region: str) -> dict[str, dict[str, Any]]:
        """Running instances of ``region`` whose SSM agent is online → facts."""
        online = {}
        with self.world.moto_lock:
            for inst in moto_seams.instances_in(region):
                if moto_seams.state(inst) != "running":
                    continue
                meta = self.world.meta.get(inst.id)
                if meta is not None and not meta.ssm_online(self.world.delays):
                    continue
                online[inst.id] = moto_seams.describe(inst)
        return online

    @staticmethod
    def _page(items: list[Any], body: dict[str, Any], default: int = 50) -> tuple[list[Any], str | None]:
        try:
            start = int(body.get("NextToken") or 0)
        except ValueError:
            start = 0
        size = int(body.get("MaxResults") or default)
        page = items[start:start + size]
        return page, (str(start + size) if start + size < len(items) else None)

    def _command_view(self, command: Command) -> dict[str, Any]:
        return {
            "CommandId": command.command_id, "DocumentName": command.document, "DocumentVersion": "$DEFAULT",
            "Comment": command.comment, "Parameters": command.parameters, "InstanceIds": command.instance_ids,
            "Targets": [], "RequestedDateTime": command.requested.timestamp(),
            "ExpiresAfter": command.requested.timestamp() + command.timeout_seconds + command.execution_timeout,
            "Status": command.status, "StatusDetails": command.status, "MaxConcurrency": "50",
            "MaxErrors": "0", "ServiceRole": "", "NotificationConfig": {}, "TimeoutSeconds": command.timeout_seconds,
            "CloudWatchOutputConfig": {"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": False},
            **command.counts(),
        }

    # --- actions -------------------------------------------------------------------------------

    def send_command(self, req: AwsRequest) -> Response:
        body = req.body
        document = body.get("DocumentName", "")
        if document != RUN_SHELL:
            return json_error("InvalidDocument", f"Document {document!r} is not supported by the sandbox "
                              f"(only {RUN_SHELL}).")
        instance_ids = list(body.get("InstanceIds") or [])
        for target in body.get("Targets") or []:
            if target.get("Key") != "InstanceIds":
                return json_error("InvalidParameters", "The sandbox supports only Targets with Key InstanceIds.")
            instance_ids += target.get("Values", [])
        if not instance_ids:
            return json_error("InvalidParameters", "Specify InstanceIds (or Targets with Key InstanceIds).")
        parameters = {k: list(v) if isinstance(v, list) else [str(v)]
                      for k, v in (body.get("Parameters") or {}).items()}
        if not parameters.get("commands"):
            return json_error("InvalidParameters", "Parameter 'commands' is required for AWS-RunShellScript.")
        # AWS: a command's document content with its runtime parameters may not exceed 64 KB
        size = len(json.dumps(parameters, separators=(",", ":")).encode("utf-8"))
        if size > MAX_COMMAND_BYTES:
            return json_error("InvalidParameters", f"The command's parameters are {size} bytes; SendCommand "
                              f"accepts at most {MAX_COMMAND_BYTES} bytes (64 KB).")
        instance_ids = list(dict.fromkeys(instance_ids))
        # Check and spawn under the moto lock, so a concurrent stop either refuses this command or
        # finds (and kills) the processes it started.
        with self.world.moto_lock:
            online = self._online(req.region)
            bad = [iid for iid in instance_ids if iid not in online]
            if bad:
                return json_error("InvalidInstanceId", f"Instances [{', '.join(bad)}] not in a valid state "
                                  "for account 123456789012 (not running, unknown, or SSM agent not online).")
            for iid in instance_ids:
                self.runner.note_type(iid, str(online[iid]["type"]))
            command = self.runner.new_command(req.region, document, parameters, instance_ids,
                                              str(body.get("Comment", "")),
                                              int(body.get("TimeoutSeconds") or 3600))
            self.runner.launch(command)
        return json_response({"Command": self._command_view(command)})

    def get_command_invocation(self, req: AwsRequest) -> Response:
        command = self.store.get(str(req.body.get("CommandId", "")))
        iid = str(req.body.get("InstanceId", ""))
        # as on AWS, an invocation is not there at once: callers must retry InvocationDoesNotExist
        lagging = command is not None and time.monotonic() - command.sent_at < self.world.delays.invocation_lag
        if command is None or iid not in command.invocations or lagging:
            return json_error("InvocationDoesNotExist", "An error occurred (InvocationDoesNotExist).")
        return json_response(invocation_view(command, command.invocations[iid]))

    def _matching(self, req: AwsRequest) -> list[Command]:
        commands = [c for c in self.store.all() if c.region == req.region]
        if req.body.get("CommandId"):
            commands = [c for c in commands if c.command_id == req.body["CommandId"]]
        if req.body.get("InstanceId"):
            commands = [c for c in commands if req.body["InstanceId"] in c.invocations]
        for flt in req.body.get("Filters") or []:
            key, value = flt.get("key"), flt.get("value")
            if key == "Status":
                commands = [c for c in commands if c.status == value]
            elif key == "DocumentName":
                commands = [c for c in commands if c.document == value]
        return commands

    def list_commands(self, req: AwsRequest) -> Response:
        if req.body.get("CommandId") and not self.store.get(req.body["CommandId"]):
            return json_error("InvalidCommandId", "Invalid command ID.")
        page, token = self._page([self._command_view(c) for c in self._matching(req)], req.body)
        return json_response({"Commands": page, **({"NextToken": token} if token else {})})

    def list_command_invocations(self, req: AwsRequest) -> Response:
        rows = []
        details = bool(req.body.get("Details"))
        for command in self._matching(req):
            for iid, inv in command.invocations.items():
                if req.body.get("InstanceId") and iid != req.body["InstanceId"]:
                    continue
                view = invocation_view(command, inv)
                row = {"CommandId": command.command_id, "InstanceId": iid, "InstanceName": "",
                       "Comment": command.comment, "DocumentName": command.document,
                       "DocumentVersion": "$DEFAULT", "RequestedDateTime": command.requested.timestamp(),
                       "Status": inv.status, "StatusDetails": inv.status, "StandardOutputUrl": "",
                       "StandardErrorUrl": "", "ServiceRole": "", "NotificationConfig": {},
                       "CloudWatchOutputConfig": view["CloudWatchOutputConfig"], "CommandPlugins": []}
                if details:
                    row["CommandPlugins"] = [{
                        "Name": "aws:runShellScript", "Status": inv.status, "StatusDetails": inv.status,
                        "ResponseCode": inv.response_code,
                        **({"ResponseStartDateTime": inv.started.timestamp()} if inv.started else {}),
                        **({"ResponseFinishDateTime": inv.ended.timestamp()} if inv.ended else {}),
                        "Output": (view["StandardOutputContent"] + view["StandardErrorContent"])[:2500],
                        "StandardOutputUrl": "", "StandardErrorUrl": "", "OutputS3Region": req.region}]
                rows.append(row)
        page, token = self._page(rows, req.body)
        return json_response({"CommandInvocations": page, **({"NextToken": token} if token else {})})

    def cancel_command(self, req: AwsRequest) -> Response:
        command = self.store.get(str(req.body.get("CommandId", "")))
        if command is None:
            return json_error("InvalidCommandId", "Invalid command ID.")
        self.runner.cancel(command, list(req.body.get("InstanceIds") or []) or None)
        return json_response({})

    def describe_instance_information(self, req: AwsRequest) -> Response:
        online = self._online(req.region)
        wanted: set[str] | None = None
        ping: set[str] | None = None
        for flt in req.body.get("Filters") or []:
            if flt.get("Key") in ("InstanceIds", "InstanceId"):
                wanted = set(flt.get("Values", []))
            elif flt.get("Key") == "PingStatus":
                ping = set(flt.get("Values", []))
        for flt in req.body.get("InstanceInformationFilterList") or []:
            if flt.get("key") == "InstanceIds":
                wanted = set(flt.get("valueSet", []))
            elif flt.get("key") == "PingStatus":
                ping = set(flt.get("valueSet", []))
        if ping is not None and "Online" not in ping:
            online = {}
        now = self.world.clock.now().timestamp()
        rows = [{
            "InstanceId": iid, "PingStatus": "Online", "LastPingDateTime": now, "AgentVersion": "3.3.0.0",
            "IsLatestVersion": True, "PlatformType": "Linux", "PlatformName": "Amazon Linux",
            "PlatformVersion": "2023", "ResourceType": "EC2Instance", "IPAddress": "127.0.0.1",
            "ComputerName": f"{iid}.sandbox.internal", "AssociationStatus": "Success",
            "SourceId": iid, "SourceType": "AWS::EC2::Instance",
        } for iid in sorted(online) if wanted is None or iid in wanted]
        page, token = self._page(rows, req.body)
        return json_response({"InstanceInformationList": page, **({"NextToken": token} if token else {})})
