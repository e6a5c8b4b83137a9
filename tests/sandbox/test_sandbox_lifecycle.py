"""EC2 lifecycle kept like AWS: processes die on stop, disks go on terminate, LaunchTime resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import Sandbox, pid_alive, wait_for

from runctl_jupyter.sandbox import control

pytestmark = pytest.mark.sandbox


def test_stop_kills_every_process_even_setsid_nohup_and_keeps_the_disk(sb: Sandbox) -> None:
    iid = sb.launch()
    inv = sb.run(iid, 'echo kept > "$RUNCTL_ROOT/data.txt"; setsid nohup sleep 1000 >/dev/null 2>&1 & echo $!')
    pid = int(inv["StandardOutputContent"].split()[-1])
    assert pid_alive(pid)
    ec2 = sb.client("ec2")
    control.set_delays(sb.info, stopping=1.0)
    try:
        ec2.stop_instances(InstanceIds=[iid])
        assert sb.state(iid)["State"]["Name"] == "stopping"
    finally:
        control.set_delays(sb.info, stopping=0.1)
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.1})
    assert wait_for(lambda: not pid_alive(pid), timeout=3)
    assert (sb.dir / "instances" / iid / "data.txt").read_text() == "kept\n"


def test_terminate_kills_processes_and_deletes_the_disk(sb: Sandbox) -> None:
    iid = sb.launch()
    pid = int(sb.run(iid, 'touch "$RUNCTL_ROOT/f"; nohup sleep 1000 >/dev/null 2>&1 & echo $!')["StandardOutputContent"])
    disk = sb.dir / "instances" / iid
    assert (disk / "f").exists()
    ec2 = sb.client("ec2")
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.1})
    assert not disk.exists()
    assert wait_for(lambda: not pid_alive(pid), timeout=3)


def test_launch_time_is_the_sandbox_clock_and_resets_on_start(sb: Sandbox) -> None:
    t0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    control.freeze_clock(sb.info, t0)
    iid = sb.launch()
    assert sb.state(iid)["LaunchTime"] == t0
    ec2 = sb.client("ec2")
    ec2.stop_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.1})
    control.advance_clock(sb.info, 3600)
    control.set_delays(sb.info, pending=1.0)
    try:
        ec2.start_instances(InstanceIds=[iid])
        assert sb.state(iid)["State"]["Name"] == "pending"
    finally:
        control.set_delays(sb.info, pending=0.1)
    ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.1})
    assert sb.state(iid)["LaunchTime"] == t0 + timedelta(hours=1)


def test_wrong_state_refusals(sb: Sandbox) -> None:
    iid = sb.launch()
    ec2 = sb.client("ec2")
    control.set_delays(sb.info, stopping=1.0)
    try:
        ec2.stop_instances(InstanceIds=[iid])
        with pytest.raises(ClientError) as err:
            ec2.start_instances(InstanceIds=[iid])
        assert err.value.response["Error"]["Code"] == "IncorrectInstanceState"
    finally:
        control.set_delays(sb.info, stopping=0.1)
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.1})


def test_one_time_spot_refuses_stop_and_changes_nothing(sb: Sandbox) -> None:
    iid = sb.launch(InstanceMarketOptions={"MarketType": "spot",
                                           "SpotOptions": {"SpotInstanceType": "one-time"}})
    assert sb.state(iid)["InstanceLifecycle"] == "spot"
    before = sb.snapshot()
    with pytest.raises(ClientError) as err:
        sb.client("ec2").stop_instances(InstanceIds=[iid])
    assert err.value.response["Error"]["Code"] == "UnsupportedOperation"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sb.snapshot() == before
    assert sb.state(iid)["State"]["Name"] == "running"


def test_age_moves_launch_time_back(sb: Sandbox) -> None:
    iid = sb.launch()
    launched = sb.state(iid)["LaunchTime"]
    control.age(sb.info, iid, 30)
    assert sb.state(iid)["LaunchTime"] == launched - timedelta(hours=30)


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1"])
def test_regions_are_separate_worlds(sb: Sandbox, region: str) -> None:
    iid = sb.launch(region=region, wait_online=False)
    ids = {i["InstanceId"] for r in sb.client("ec2", region).describe_instances()["Reservations"]
           for i in r["Instances"]}
    assert iid in ids
    other = "eu-west-1" if region != "eu-west-1" else "us-west-2"
    others = {i["InstanceId"] for r in sb.client("ec2", other).describe_instances()["Reservations"]
              for i in r["Instances"]}
    assert iid not in others


def test_a_clock_move_past_what_a_date_holds_is_a_clear_400_not_a_500(sb: Sandbox) -> None:
    from runctl_jupyter import api
    from runctl_jupyter.errors import BackendError, UsageError

    before = control.clock(sb.info)
    with pytest.raises(BackendError) as err:  # the control API itself: a 400 that says why
        control.advance_clock(sb.info, 99999999999 * 86400.0)
    assert err.value.message.startswith("The sandbox refused clock: bad request: cannot move the clock")
    assert abs((control.clock(sb.info) - before).total_seconds()) < 60  # nothing moved
    with pytest.raises(UsageError) as usage:  # what `sandbox clock --advance 99999999999d` says
        api.sandbox_clock(advance=99999999999 * 86400.0)
    assert usage.value.message.startswith("The sandbox clock moves forward by up to 100 years at a time")


def test_every_type_in_the_price_snapshot_is_a_type_the_sandbox_knows(sb: Sandbox) -> None:
    """moto's data lacks the P3 family AWS still offers: without the seam, `create p3.2xlarge` was
    refused in the sandbox (InvalidInstanceType) while AWS launches it."""
    import json
    from pathlib import Path

    import runctl_jupyter

    prices = json.loads((Path(runctl_jupyter.__file__).parent / "costs" / "data" / "prices.json").read_text())
    for region, types in prices["on_demand"].items():
        found = sb.client("ec2", region).describe_instance_types(InstanceTypes=sorted(types))["InstanceTypes"]
        assert sorted(t["InstanceType"] for t in found) == sorted(types), region
    p3 = sb.client("ec2", "us-west-2").describe_instance_types(InstanceTypes=["p3.2xlarge"])["InstanceTypes"][0]
    assert p3["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"] and p3["GpuInfo"]["Gpus"][0]["Name"] == "V100"


def test_presigned_ec2_calls_reach_ec2(sb: Sandbox) -> None:
    """A guardian calls EC2 through presigned GET URLs (its instance's StopInstances, a fleet node's
    DescribeInstances of its peers), as AWS takes them. The sandbox once answered such a GET with S3's
    bucket listing (its moto routes by the Authorization header, which a presigned URL has not)."""
    import subprocess

    iid = sb.launch()
    ec2 = sb.client("ec2")
    ended = {"Name": "instance-state-name", "Values": ["stopping", "stopped", "shutting-down", "terminated"]}
    url = ec2.generate_presigned_url("describe_instances", Params={"InstanceIds": [iid], "Filters": [ended]})
    body = subprocess.run(["curl", "-sS", url], capture_output=True, text=True, check=True).stdout
    assert "<DescribeInstancesResponse" in body and iid not in body  # running: filtered out
    stop = ec2.generate_presigned_url("stop_instances", Params={"InstanceIds": [iid]})
    answer = subprocess.run(["curl", "-sS", stop], capture_output=True, text=True, check=True).stdout
    assert "<StopInstancesResponse" in answer and f"<instanceId>{iid}</instanceId>" in answer
    body = subprocess.run(["curl", "-sS", url], capture_output=True, text=True, check=True).stdout
    assert f"<instanceId>{iid}</instanceId>" in body  # stopping or stopped: listed now
