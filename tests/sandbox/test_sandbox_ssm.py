"""SSM commands really run on the instance's disk, with AWS's limits and refusals."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from sandbox_helpers import Sandbox

from runctl_jupyter.sandbox import control

pytestmark = pytest.mark.sandbox


def test_command_stdout_comes_back_and_runs_with_the_instance_disk_as_root(sb: Sandbox) -> None:
    """As the SSM agent does, each command runs in a folder of its own (never the home folder: a relative
    path in a script must fail here as it would on AWS); RUNCTL_ROOT is the instance's disk."""
    iid = sb.launch()
    inv = sb.run(iid, "echo hi; pwd; echo \"$RUNCTL_SANDBOX_INSTANCE $RUNCTL_ROOT\"; "
                      "env | grep -c '^AWS_' || true; echo err >&2")
    assert inv["Status"] == "Success" and inv["ResponseCode"] == 0
    lines = inv["StandardOutputContent"].splitlines()
    disk = str((sb.dir / "instances" / iid).resolve())
    assert lines[0] == "hi"
    assert lines[1] != disk and lines[1].endswith("/cwd") and not lines[1].startswith(disk + "/")
    assert lines[2] == f"{iid} {disk}"
    assert lines[3] == "0"  # no AWS credentials leak into instance processes
    assert inv["StandardErrorContent"] == "err\n"


def test_failed_command_reports_its_exit_code(sb: Sandbox) -> None:
    iid = sb.launch()
    inv = sb.run(iid, "echo oops >&2; exit 7")
    assert inv["Status"] == "Failed" and inv["ResponseCode"] == 7
    assert inv["StandardErrorContent"] == "oops\n"


def test_output_is_cut_at_aws_limits(sb: Sandbox) -> None:
    iid = sb.launch()
    inv = sb.run(iid, "python3 -c \"import sys; sys.stdout.write('o'*30000); sys.stderr.write('e'*10000)\"")
    assert inv["Status"] == "Success"
    assert len(inv["StandardOutputContent"]) == 24_000
    assert len(inv["StandardErrorContent"]) == 8_000


def test_in_progress_while_running_then_success(sb: Sandbox) -> None:
    iid = sb.launch()
    command_id = sb.send(iid, "sleep 1; echo done")
    ssm = sb.client("ssm")
    # as on AWS, the invocation is unknown for a moment after SendCommand
    with pytest.raises(ClientError) as err:
        ssm.get_command_invocation(CommandId=command_id, InstanceId=iid)
    assert err.value.response["Error"]["Code"] == "InvocationDoesNotExist"
    time.sleep(control.set_delays(sb.info)["invocation_lag"])
    assert ssm.get_command_invocation(CommandId=command_id, InstanceId=iid)["Status"] == "InProgress"
    listed = ssm.list_commands(CommandId=command_id)["Commands"][0]
    assert listed["Status"] == "InProgress" and listed["InstanceIds"] == [iid]
    inv = sb.wait_command(command_id, iid)
    assert inv["Status"] == "Success" and inv["StandardOutputContent"] == "done\n"
    invocations = ssm.list_command_invocations(CommandId=command_id, Details=True)["CommandInvocations"]
    assert [i["InstanceId"] for i in invocations] == [iid]
    assert invocations[0]["CommandPlugins"][0]["Output"] == "done\n"


def test_only_the_instances_asked_run_the_command(sb: Sandbox) -> None:
    first, second, third = sb.launch(), sb.launch(), sb.launch()
    command_id = sb.send([first, third], 'echo here > "$RUNCTL_ROOT/marker.txt"')
    for iid in (first, third):
        assert sb.wait_command(command_id, iid)["Status"] == "Success"
    disks = sb.dir / "instances"
    assert (disks / first / "marker.txt").read_text() == "here\n"
    assert (disks / third / "marker.txt").read_text() == "here\n"
    assert not (disks / second / "marker.txt").exists()
    with pytest.raises(ClientError) as err:
        sb.client("ssm").get_command_invocation(CommandId=command_id, InstanceId=second)
    assert err.value.response["Error"]["Code"] == "InvocationDoesNotExist"


def test_unknown_or_stopped_instance_is_refused_and_nothing_changes(sb: Sandbox) -> None:
    iid = sb.launch()
    ec2, ssm = sb.client("ec2"), sb.client("ssm")
    ec2.stop_instances(InstanceIds=[iid])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[iid], WaiterConfig={"Delay": 0.1})
    before = sb.snapshot()
    for target in ([iid], ["i-0123456789abcdef0"]):
        with pytest.raises(ClientError) as err:
            ssm.send_command(InstanceIds=target, DocumentName="AWS-RunShellScript",
                             Parameters={"commands": ["touch refused.txt"]})
        assert err.value.response["Error"]["Code"] == "InvalidInstanceId"
    time.sleep(0.2)
    assert sb.snapshot() == before


def test_a_mixed_request_with_one_bad_instance_runs_nowhere(sb: Sandbox) -> None:
    good = sb.launch()
    before = sb.snapshot()
    with pytest.raises(ClientError) as err:
        sb.send([good, "i-0123456789abcdef0"], 'touch "$RUNCTL_ROOT/partial.txt"')
    assert err.value.response["Error"]["Code"] == "InvalidInstanceId"
    time.sleep(0.2)
    assert sb.snapshot() == before


def test_cancel_command(sb: Sandbox) -> None:
    iid = sb.launch()
    command_id = sb.send(iid, "sleep 30")
    sb.client("ssm").cancel_command(CommandId=command_id)
    inv = sb.wait_command(command_id, iid, timeout=5)
    assert inv["Status"] == "Cancelled"


def test_describe_instance_information_lists_running_instances_only(sb: Sandbox) -> None:
    running, stopped = sb.launch(), sb.launch()
    ec2 = sb.client("ec2")
    ec2.stop_instances(InstanceIds=[stopped])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[stopped], WaiterConfig={"Delay": 0.1})
    infos = sb.client("ssm").describe_instance_information()["InstanceInformationList"]
    by_id = {i["InstanceId"]: i for i in infos}
    assert by_id[running]["PingStatus"] == "Online" and by_id[running]["PlatformType"] == "Linux"
    assert stopped not in by_id


def test_pending_instance_is_not_yet_online(sb: Sandbox) -> None:
    iid = sb.launch(wait_online=False)
    with pytest.raises(ClientError) as err:
        sb.send(iid, "true")
    assert err.value.response["Error"]["Code"] == "InvalidInstanceId"
    sb.wait_online(iid)
    assert sb.run(iid, "true")["Status"] == "Success"


def test_send_command_over_64_kb_is_refused_as_aws_refuses_it(sb: Sandbox) -> None:
    iid = sb.launch()
    ssm = sb.client("ssm")
    with pytest.raises(ClientError) as err:
        ssm.send_command(InstanceIds=[iid], DocumentName="AWS-RunShellScript",
                         Parameters={"commands": ["echo " + "x" * 66_000]})
    assert err.value.response["Error"]["Code"] == "InvalidParameters"
    assert "64 KB" in err.value.response["Error"]["Message"]
    ok = ssm.send_command(InstanceIds=[iid], DocumentName="AWS-RunShellScript",
                          Parameters={"commands": [": " + "x" * 60_000 + "\necho fits"]})
    assert ok["Command"]["CommandId"]


def test_commands_run_as_on_aws_with_no_home_and_a_bare_python3(sb: Sandbox) -> None:
    """SSM on AWS: no HOME, the system PATH, and an image's python3 without the notebook's packages."""
    iid = sb.launch()
    inv = sb.run(iid, 'echo "home=${HOME-unset}"; python3 -c "import boto3" 2>&1 | tail -n 1; '
                      'python3 -c "import json, sqlite3; print(\'stdlib ok\')"')
    out = inv["StandardOutputContent"]
    assert "home=unset" in out
    assert "ModuleNotFoundError: No module named 'boto3'" in out and "stdlib ok" in out


def test_the_aws_latency_profile_keeps_a_command_pending_until_the_agent_picks_it_up(sb: Sandbox) -> None:
    iid = sb.launch()
    before = control.set_delays(sb.info)
    control.set_delays(sb.info, **control.AWS_SSM_LATENCY)
    try:
        started = time.monotonic()
        command_id = sb.send(iid, "echo picked up")
        time.sleep(control.AWS_SSM_LATENCY["invocation_lag"] + 0.05)
        assert sb.client("ssm").get_command_invocation(CommandId=command_id, InstanceId=iid)["Status"] == "Pending"
        inv = sb.wait_command(command_id, iid)
        assert inv["Status"] == "Success" and inv["StandardOutputContent"] == "picked up\n"
        assert time.monotonic() - started >= control.AWS_SSM_LATENCY["ssm_delivery"]
    finally:
        control.set_delays(sb.info, **{k: before[k] for k in control.AWS_SSM_LATENCY})
