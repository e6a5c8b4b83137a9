"""The checkpoint guard on the sandbox: terminate trusts only complete, fresh, re-verified evidence,
and a one-time spot stop never ends an instance whose checkpoints have no verified copy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from itest_helpers import REPO
from sandbox_env import fresh_instance

from runctl_jupyter import api, guard, training
from runctl_jupyter.aws import ec2, s3
from runctl_jupyter.errors import GuardRefused

SCRIPT = REPO / "training" / "train_with_checkpoints.py"
BUCKET = "runctl-sandbox"


def _disk(sandbox, iid: str) -> Path:
    return Path(sandbox.directory) / "instances" / iid


def _train(ctx, iid: str, project: str, seed: int) -> None:
    launch = training.start_training(ctx, iid, SCRIPT, ["--epochs", "2", "--sleep", "0", "--seed", str(seed)],
                                     project=project)
    training.follow_run(ctx, launch, lambda _text: None)


def _boto_stop_start(ctx, iid: str, action: str) -> None:
    client = ctx.client("ec2")
    if action == "start":
        # LaunchTime and runctl's stop record are stamped to the second, and on AWS a stop and a start
        # take far longer than one; the sandbox's take a fraction of one, so a start could share the
        # second of runctl's record and not look later than it: start in a later second
        time.sleep(1.0)
    getattr(client, f"{action}_instances")(InstanceIds=[iid])
    client.get_waiter("instance_stopped" if action == "stop" else "instance_running").wait(
        InstanceIds=[iid], WaiterConfig={"Delay": 0.2})


def test_stop_saves_every_project_on_the_disk_and_terminate_trusts_its_record(ctx, instance):
    # two projects on one disk: the older one's checkpoints were once destroyed by terminate
    _train(ctx, instance, "alpha", 8101)
    _train(ctx, instance, "beta", 8102)
    api.stop(ctx, instance, wait=True)
    tag = api.status(ctx, instance).tags[guard.EVIDENCE_TAG].split()
    assert tag[0] == "v1" and tag[2] == tag[3] == "4" and tag[4] == "1"  # 4 listed, 4 verified, complete
    said: list[str] = []
    api.terminate(ctx, instance, echo=said.append)
    assert said[0] == (f"Every checkpoint has a verified copy in s3://{BUCKET}/runctl/alpha/checkpoints/, "
                       f"s3://{BUCKET}/runctl/beta/checkpoints/")


def test_copies_deleted_after_the_stop_make_terminate_refuse(ctx, instance):
    _train(ctx, instance, "gamma", 8103)
    api.stop(ctx, instance, wait=True)
    for obj in s3.list_objects(ctx, BUCKET, "runctl/gamma/checkpoints/").values():
        ctx.client("s3").delete_object(Bucket=BUCKET, Key=obj.key)
    with pytest.raises(GuardRefused) as err:
        api.terminate(ctx, instance)
    # a stopped instance: no "use 'stop' instead" (stop does nothing to it), but what runctl cannot confirm
    assert err.value.message == (f"Termination blocked: runctl cannot confirm that every checkpoint on stopped "
                                 f"instance {instance}'s disk has a verified copy in S3.")
    assert err.value.details[0] == f"⚠️  WARNING: Instance {instance} has checkpoints that will be lost on termination."
    assert "   Checkpoint: runctl/gamma/checkpoints/checkpoint_epoch_2.json" in err.value.details
    rendered = err.value.render()
    assert rendered.count("WARNING") == 1
    assert f"runctl aws start {instance} --wait" in rendered and f"runctl aws terminate {instance} --snapshot" in rendered
    assert api.status(ctx, instance).state == "stopped"


def test_a_stop_runctl_did_not_see_is_doubt_and_a_snapshot_is_the_way_out(ctx, instance):
    """After runctl's stop the instance ran again and was stopped by something else (the guardian,
    the console): what runctl recorded no longer describes its disk."""
    _train(ctx, instance, "delta", 8104)
    api.stop(ctx, instance, wait=True)
    _boto_stop_start(ctx, instance, "start")
    _boto_stop_start(ctx, instance, "stop")
    with pytest.raises(GuardRefused) as err:
        api.terminate(ctx, instance)
    assert any("predates its last start" in line for line in err.value.details), err.value.details
    said: list[str] = []
    api.terminate(ctx, instance, snapshot=True, wait=True, echo=said.append)
    snaps = ctx.client("ec2").describe_snapshots(
        Filters=[{"Name": "tag:runctl:instance", "Values": [instance]}])["Snapshots"]
    assert len(snaps) == 1 and snaps[0]["State"] == "completed"
    tags = {t["Key"]: t["Value"] for t in snaps[0]["Tags"]}
    assert tags["runctl:project"] == "delta" and tags["runctl:device"]
    assert any(line.startswith(f"Snapshot(s) {snaps[0]['SnapshotId']} complete. To restore:") for line in said), said
    assert api.status(ctx, instance).state == "terminated"


def test_a_stop_with_the_ssm_agent_offline_leaves_no_trust(ctx, instance, monkeypatch):
    _train(ctx, instance, "epsilon", 8105)
    monkeypatch.setattr(ec2, "ssm_online", lambda _ctx, _ids: set())
    api.stop(ctx, instance, wait=True)
    monkeypatch.undo()
    with pytest.raises(GuardRefused) as err:
        api.terminate(ctx, instance)
    assert any("SSM agent was not Online" in line for line in err.value.details), err.value.details


def test_a_dotted_name_uploads_and_the_spot_instance_ends(ctx, sandbox):
    with fresh_instance(ctx, "itest", spot=True) as iid:
        _train(ctx, iid, "zeta", 8106)
        (_disk(sandbox, iid) / "runctl" / "zeta" / "checkpoints" / "model..pt").write_bytes(b"weights")
        said: list[str] = []
        api.stop(ctx, iid, wait=True, echo=said.append)
        assert "model..pt" in "".join(s3.list_objects(ctx, BUCKET, "runctl/zeta/checkpoints/"))
        assert api.status(ctx, iid).state == "terminated", said


def test_a_one_time_spot_stop_keeps_the_instance_when_an_upload_fails(ctx, monkeypatch):
    with fresh_instance(ctx, "itest", spot=True) as iid:
        _train(ctx, iid, "eta", 8107)
        # an upload URL that cannot work (as an expired or wrong-region one would not)
        monkeypatch.setattr(s3, "presign_put", lambda *_a, **_k: "http://127.0.0.1:9/refused")
        said: list[str] = []
        with pytest.raises(GuardRefused) as err:
            api.stop(ctx, iid, wait=True, echo=said.append)
        assert "runctl kept it running because 2 checkpoint(s) on its disk have no verified copy in S3" \
            in err.value.message
        assert any(line.startswith("  upload failed: checkpoint_epoch_") for line in said), said
        assert api.status(ctx, iid).state == "running"
