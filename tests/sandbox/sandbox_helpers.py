"""Helpers for the sandbox tests: boto3 clients against the sandbox, launching, running commands."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from runctl_jupyter.sandbox import control
from runctl_jupyter.sandbox.control import SandboxInfo

AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


class Sandbox:
    def __init__(self, info: SandboxInfo) -> None:
        self.info = info
        self._amis: dict[str, str] = {}

    @property
    def dir(self) -> Path:
        return self.info.dir

    def client(self, service: str, region: str = "us-east-1", config: Config | None = None) -> Any:
        return boto3.client(service, endpoint_url=self.info.endpoint, region_name=region,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=config or Config(retries={"mode": "standard", "max_attempts": 3}))

    def ami(self, region: str = "us-east-1") -> str:
        if region not in self._amis:
            param = self.client("ssm", region).get_parameter(Name=AL2023)["Parameter"]
            self._amis[region] = str(param["Value"])
        return self._amis[region]

    def launch(self, region: str = "us-east-1", wait_online: bool = True, **kwargs: Any) -> str:
        ec2 = self.client("ec2", region)
        kwargs.setdefault("InstanceType", "t3.micro")
        iid = ec2.run_instances(ImageId=self.ami(region), MinCount=1, MaxCount=1, **kwargs)["Instances"][0]["InstanceId"]
        if wait_online:
            ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.1})
            self.wait_online(iid, region)
        return str(iid)

    def wait_online(self, iid: str, region: str = "us-east-1", timeout: float = 10) -> None:
        ssm = self.client("ssm", region)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [iid]}])
            if infos["InstanceInformationList"]:
                return
            time.sleep(0.05)
        raise AssertionError(f"{iid} never came online in SSM")

    def state(self, iid: str, region: str = "us-east-1") -> dict[str, Any]:
        reservations = self.client("ec2", region).describe_instances(InstanceIds=[iid])["Reservations"]
        return dict(reservations[0]["Instances"][0])

    def send(self, iid: str | list[str], script: str, region: str = "us-east-1") -> str:
        ids = [iid] if isinstance(iid, str) else iid
        command = self.client("ssm", region).send_command(
            InstanceIds=ids, DocumentName="AWS-RunShellScript", Parameters={"commands": [script]})
        return str(command["Command"]["CommandId"])

    def wait_command(self, command_id: str, iid: str, region: str = "us-east-1",
                     timeout: float = 20) -> dict[str, Any]:
        ssm = self.client("ssm", region)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                inv = ssm.get_command_invocation(CommandId=command_id, InstanceId=iid)
            except ClientError as exc:  # right after SendCommand, as on AWS
                if exc.response["Error"]["Code"] != "InvocationDoesNotExist":
                    raise
                inv = {"Status": "Pending"}
            if inv["Status"] not in ("Pending", "InProgress", "Delayed"):
                return dict(inv)
            time.sleep(0.03)
        raise AssertionError(f"command {command_id} still running on {iid}")

    def run(self, iid: str, script: str, region: str = "us-east-1") -> dict[str, Any]:
        return self.wait_command(self.send(iid, script, region), iid, region)

    def snapshot(self) -> dict[str, Any]:
        return control.snapshot(self.info)


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
