"""IMDSv2, interruption, faults, snapshot, start/attach, presigned S3 URLs with curl."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.config import Config
from sandbox_helpers import Sandbox, pid_alive, wait_for

from runctl_jupyter.sandbox import control

pytestmark = pytest.mark.sandbox


def _imds(sb: Sandbox, iid: str, path: str, token: str | None) -> tuple[int, str]:
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    request = urllib.request.Request(f"{sb.info.endpoint}/_imds/{iid}/latest/{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _token(sb: Sandbox, iid: str) -> str:
    request = urllib.request.Request(f"{sb.info.endpoint}/_imds/{iid}/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode()


def test_imdsv2_needs_a_token(sb: Sandbox) -> None:
    iid = sb.launch()
    assert _imds(sb, iid, "meta-data/instance-id", None)[0] == 401
    token = _token(sb, iid)
    assert _imds(sb, iid, "meta-data/instance-id", token) == (200, iid)
    assert _imds(sb, iid, "meta-data/instance-life-cycle", token) == (200, "on-demand")
    assert _imds(sb, iid, "meta-data/placement/availability-zone", token)[1].startswith("us-east-1")
    assert _imds(sb, iid, "meta-data/spot/instance-action", token)[0] == 404
    assert _imds(sb, iid, "meta-data/iam/security-credentials/", token)[0] == 404


def test_instance_reaches_imds_through_its_variable(sb: Sandbox) -> None:
    iid = sb.launch()
    script = ('T=$(curl -s -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$RUNCTL_IMDS_ENDPOINT/latest/api/token");'
              'curl -s -H "X-aws-ec2-metadata-token: $T" "$RUNCTL_IMDS_ENDPOINT/latest/meta-data/instance-id"')
    assert sb.run(iid, script)["StandardOutputContent"] == iid


def test_interrupt_posts_a_notice_then_reclaims_the_spot_instance(sb: Sandbox) -> None:
    iid = sb.launch(InstanceMarketOptions={"MarketType": "spot"})
    pid = int(sb.run(iid, "setsid sleep 1000 >/dev/null 2>&1 & echo $!")["StandardOutputContent"])
    token = _token(sb, iid)
    assert _imds(sb, iid, "meta-data/instance-life-cycle", token) == (200, "spot")
    control.interrupt(sb.info, iid, notice_seconds=1)
    status, body = _imds(sb, iid, "meta-data/spot/instance-action", token)
    assert status == 200 and json.loads(body)["action"] == "terminate"
    assert wait_for(lambda: sb.state(iid)["State"]["Name"] == "terminated", timeout=10)
    assert not (sb.dir / "instances" / iid).exists()
    assert not pid_alive(pid)


def test_throttling_is_survived_with_standard_retries(sb: Sandbox) -> None:
    sb.launch()
    control.set_faults(sb.info, throttle=0.3, seed=1, services=["ec2"])
    ec2 = sb.client("ec2", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    for _ in range(8):
        assert ec2.describe_instances()["Reservations"]
    state = control.faults(sb.info)
    assert state["counters"]["throttle"] > 0


def test_dropped_calls_and_latency_are_retried(sb: Sandbox) -> None:
    control.set_faults(sb.info, drop=0.3, latency_ms=5, seed=2, services=["ssm", "s3"])
    ssm = sb.client("ssm", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    for _ in range(10):
        ssm.describe_instance_information()
    counters = control.faults(sb.info)["counters"]
    assert counters["drop"] > 0 and counters["latency"] >= 10


def test_control_calls_are_never_faulted(sb: Sandbox) -> None:
    control.set_faults(sb.info, throttle=1.0, seed=3)
    for _ in range(5):
        assert control.snapshot(sb.info)["instances"] is not None
    assert control.faults(sb.info)["counters"]["throttle"] == 0


def test_start_twice_attaches_to_the_same_server(sb: Sandbox) -> None:
    again = control.start(sb.dir)
    assert again.pid == sb.info.pid and again.endpoint == sb.info.endpoint
    status = control.status(sb.dir)
    assert status is not None and status.pid == sb.info.pid


def test_env_for_points_boto3_at_the_sandbox(sb: Sandbox) -> None:
    env = control.env_for(sb.info)
    assert env["AWS_ENDPOINT_URL"] == sb.info.endpoint and env["AWS_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and "AWS_SESSION_TOKEN" not in env
    assert env["RUNCTL_SANDBOX_DIR"] == str(sb.dir)


def test_presigned_put_and_get_work_with_curl(sb: Sandbox, tmp_path) -> None:
    # SigV4, as runctl presigns (the sandbox refuses SigV2 as S3 does: tests/sandbox/test_sandbox_s3.py)
    s3 = sb.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="runctl-presign")
    put = s3.generate_presigned_url("put_object", Params={"Bucket": "runctl-presign", "Key": "a/b.bin"},
                                    ExpiresIn=600)
    assert put.startswith(sb.info.endpoint + "/runctl-presign/")  # path-style on the sandbox endpoint
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"checkpoint-bytes" * 1000)
    subprocess.run(["curl", "-sf", "-X", "PUT", "--upload-file", str(payload), put], check=True, timeout=30)
    get = s3.generate_presigned_url("get_object", Params={"Bucket": "runctl-presign", "Key": "a/b.bin"},
                                    ExpiresIn=600)
    fetched = subprocess.run(["curl", "-sf", get], check=True, capture_output=True, timeout=30).stdout
    assert fetched == payload.read_bytes()
    objects = control.snapshot(sb.info)["s3"]["runctl-presign"]
    assert objects["a/b.bin"]["size"] == len(fetched)


def test_snapshot_sees_disk_and_tag_changes(sb: Sandbox) -> None:
    iid = sb.launch()
    before = sb.snapshot()
    sb.run(iid, 'mkdir -p "$RUNCTL_ROOT/runctl/p" && echo x > "$RUNCTL_ROOT/runctl/p/f"')
    sb.client("ec2").create_tags(Resources=[iid], Tags=[{"Key": "runctl:run-state", "Value": "running"}])
    after = sb.snapshot()
    assert after != before
    assert "runctl/p/f" in after["disks"][iid]
    assert after["instances"][iid]["tags"]["runctl:run-state"] == "running"
