"""An instance that stops or terminates through EC2 (the console, a spot interruption, another tool:
not runctl's `stop`) ends its training, as on AWS: the sandbox must find the training's processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sandbox_env import make_project

from runctl_jupyter import api


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("action", ["stop", "terminate"])
def test_an_ec2_stop_or_terminate_ends_the_training(ctx, instance, tmp_path, action):
    script = make_project(tmp_path / "proj", "ended")
    launch = api.train(ctx, instance, script, ["--epochs", "500", "--sleep", "1"], project="ended")
    assert launch.pid > 0 and _alive(launch.pid)
    client = ctx.client("ec2")
    getattr(client, f"{action}_instances")(InstanceIds=[instance])
    client.get_waiter(f"instance_{action}ped" if action == "stop" else "instance_terminated").wait(
        InstanceIds=[instance], WaiterConfig={"Delay": 0.2, "MaxAttempts": 150})
    assert _gone_within(launch.pid, 10), f"the training (PID {launch.pid}) outlived its instance's {action}"
