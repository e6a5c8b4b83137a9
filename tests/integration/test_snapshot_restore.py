"""A disk saved by `terminate --snapshot` in the cost table, and back on a new instance
(`create --from-snapshot`), through the notebook front end on the sandbox."""

from __future__ import annotations

import pytest
from itest_helpers import REPO, run_cli

from runctl_jupyter import api, training
from runctl_jupyter.aws import s3
from runctl_jupyter.errors import BackendError
from runctl_jupyter.sandbox import control

SCRIPT = REPO / "training" / "train_with_checkpoints.py"
BUCKET = "runctl-sandbox"
PROJECT = "restoreme"


def _runctl(shell, line: str):
    return shell.run_line_magic("runctl", line)


def _instance_count(ctx) -> int:
    pages = ctx.client("ec2").get_paginator("describe_instances").paginate()
    return sum(len(r["Instances"]) for page in pages for r in page["Reservations"])


def _snapshots_of(ctx, iid: str) -> list[dict]:
    return ctx.client("ec2").describe_snapshots(
        Filters=[{"Name": "tag:runctl:instance", "Values": [iid]}])["Snapshots"]


def test_a_saved_disk_is_costed_and_its_checkpoints_come_back_on_a_new_instance(shell, ctx, capsys):
    iid = _runctl(shell, f"aws create t3.micro --wait --project {PROJECT}")
    new_iid = snapshot_id = None
    info = control.status()
    try:
        launch = training.start_training(ctx, iid, SCRIPT, ["--epochs", "3", "--sleep", "0", "--seed", "8201"],
                                         project=PROJECT)
        training.follow_run(ctx, launch, lambda _text: None)
        saved = set(_runctl(shell, f"aws checkpoints {iid}").query("where == 'instance'")["checkpoint"])
        assert saved == {"checkpoint_epoch_1.json", "checkpoint_epoch_2.json", "checkpoint_epoch_3.json"}
        _runctl(shell, f"aws stop {iid} --wait")
        # Their S3 copies go: terminate refuses, and the snapshot becomes the only copy.
        for obj in s3.list_objects(ctx, BUCKET, f"runctl/{PROJECT}/checkpoints/").values():
            ctx.client("s3").delete_object(Bucket=BUCKET, Key=obj.key)

        api.sandbox_clock(freeze=ctx.now().replace(microsecond=0).isoformat())
        capsys.readouterr()
        _runctl(shell, f"aws terminate {iid} --snapshot --wait")
        said = capsys.readouterr().out
        (snap,) = _snapshots_of(ctx, iid)
        snapshot_id = snap["SnapshotId"]
        assert (f"Snapshot(s) {snapshot_id} complete. To restore: `%runctl aws create t3.micro --from-snapshot "
                f"{snapshot_id}` (a new instance with the saved disk attached), or EC2 console → Snapshots → "
                "Actions → Create volume.") in said, said

        api.sandbox_clock(advance=73 * 3600)  # a tenth of AWS's 730-hour month
        df = _runctl(shell, f"resources --project {PROJECT}")
        row = df[df["snapshot_id"] == snapshot_id].iloc[0]
        assert (row["kind"], row["instance_id"], row["project"], row["state"]) == \
            ("snapshot", iid, PROJECT, "completed")
        assert row["size_gb"] == 30 and row["created"] == snap["StartTime"]
        assert row["storage_usd_per_month"] == pytest.approx(30 * 0.05)  # standard tier, us-east-1
        assert row["accrued_usd"] == pytest.approx(0.15)
        listing = run_cli("--sandbox", "resources", "list", "--project", PROJECT)
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert "  EBS snapshots (1, 30 GB, $1.50/month)" in lines, listing.stdout
        assert (f"    {snapshot_id}  from {iid}  project {PROJECT}  30 GB  created {row['created']:%Y-%m-%d}"
                "  $1.50/month ($0.15 so far)") in lines, listing.stdout
        assert lines[-1].startswith("  Total: 0 running · $0.0000/hr · $0.15 accrued") and \
            " · 1 snapshot 30 GB $1.50/month" in lines[-1], listing.stdout
        control.unfreeze_clock(info, reset=True)

        capsys.readouterr()
        new_iid = _runctl(shell, f"aws create t3.micro --from-snapshot {snapshot_id} --wait")
        said = capsys.readouterr().out
        assert f"Created {new_iid} (t3.micro, project {PROJECT})" in said  # the snapshot's project
        assert f"{snapshot_id} (30 GB, the disk of {iid}) is attached to {new_iid} as /dev/sdf" in said
        assert f"List them: `%runctl aws checkpoints {new_iid}`" in said, said
        assert f"restored from {snapshot_id} (attached as /dev/sdf)" in api.status(ctx, new_iid).summary()
        restored = _runctl(shell, f"aws checkpoints {new_iid}")
        assert set(restored.query("where == 'instance'")["checkpoint"]) == saved
        assert restored.query("where == 's3'").empty  # they came from the snapshot, not from S3
    finally:
        control.unfreeze_clock(info, reset=True)
        for instance in (iid, new_iid):
            if instance and api.status(ctx, instance).state not in ("terminated", "shutting-down"):
                api.terminate(ctx, instance, force=True)
        if snapshot_id:
            ctx.client("ec2").delete_snapshot(SnapshotId=snapshot_id)


def test_a_snapshot_of_another_region_is_refused_before_anything_is_launched(shell, ctx):
    before = _instance_count(ctx)
    with pytest.raises(BackendError) as err:
        _runctl(shell, "aws create t3.micro --from-snapshot snap-0123456789abcdef0")
    assert err.value.message == ("Snapshot snap-0123456789abcdef0 was not found in us-east-1 (a snapshot "
                                 "belongs to one region).")
    assert err.value.render("%runctl").splitlines()[2:4] == [
        "  1. Find its region: runctl's snapshots are listed with theirs: %runctl resources list --all-regions",
        "  2. Then create the instance in that region: %runctl aws create t3.micro --from-snapshot "
        "snap-0123456789abcdef0 --region REGION"]
    assert _instance_count(ctx) == before
