"""What `create --from-snapshot` and `terminate --snapshot` tell the user, with the front end's prefix."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runctl_jupyter import restore
from runctl_jupyter.aws import ec2
from runctl_jupyter.dispatch import Frontend
from runctl_jupyter.errors import BackendError, Hint, cmd
from runctl_jupyter.models import EbsSnapshot, Instance

OLD, NEW, SNAP = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2", "snap-0123456789abcdef0"


def _aws_ctx() -> SimpleNamespace:
    world = SimpleNamespace(label=lambda: "AWS account 123456789012 · eu-west-1")
    return SimpleNamespace(is_sandbox=False, world=lambda: world, settings=SimpleNamespace(remote_user="ec2-user"))


def test_a_hint_reads_with_each_front_ends_prefix():
    line = cmd(f"aws create t3.micro --from-snapshot {SNAP}").said("To restore: `{}`.")
    assert isinstance(line, Hint) and line == f"To restore: `runctl aws create t3.micro --from-snapshot {SNAP}`."
    shown: list[str] = []
    Frontend(prefix="%runctl", echo=shown.append, notebook=True).echo(line)
    Frontend(prefix="%runctl", echo=shown.append, notebook=True).echo("plain text")
    assert shown == [f"To restore: `%runctl aws create t3.micro --from-snapshot {SNAP}`.", "plain text"]


def test_on_aws_it_says_where_the_volume_is_and_how_to_mount_it():
    shown: list[str] = []
    fe = Frontend(prefix="%runctl", echo=shown.append, notebook=True)
    snap = EbsSnapshot(SNAP, "completed", 30, "eu-west-1", source_instance=OLD, project="mnist")
    restore.say_where(_aws_ctx(), Instance(NEW, "g5.xlarge", "running", "eu-west-1"), snap, "mnist", fe.echo)
    ckpt = "/home/ec2-user/runctl/mnist/checkpoints"
    assert shown == [
        f"[AWS account 123456789012 · eu-west-1] {SNAP} (30 GB, the disk of {OLD}) is attached to {NEW} as "
        "/dev/sdf; the volume is deleted with the instance, the snapshot stays (it bills until you delete it).",
        "  Once it runs, copy its checkpoints back on the instance (a Nitro type shows the volume as /dev/nvme1n1, "
        "a Xen type as /dev/xvdf: `lsblk` tells; nouuid because it is a copy of an XFS root disk):",
        "    sudo mkdir -p /mnt/runctl-restore && sudo mount -o ro,nouuid /dev/nvme1n1p1 /mnt/runctl-restore",
        f"    sudo mkdir -p {ckpt} && sudo cp -an /mnt/runctl-restore{ckpt}/. {ckpt}/ && sudo umount /mnt/runctl-restore",
        f"  Then `%runctl aws checkpoints {NEW}` lists them, and `train … --resume auto` resumes from them.",
    ]


def test_a_snapshot_still_being_taken_is_refused_with_how_to_wait(monkeypatch):
    pending = EbsSnapshot(SNAP, "pending", 30, "eu-west-1", progress="42%")
    monkeypatch.setattr(ec2, "describe_snapshot", lambda _ctx, _sid: pending)
    with pytest.raises(BackendError) as err:
        restore.check_snapshot(SimpleNamespace(region="eu-west-1"), SNAP, "t3.micro")
    assert err.value.render("runctl").splitlines() == [
        f"Error: Snapshot {SNAP} is still being taken (42%): a volume can be made from it once it is completed.",
        "To resolve:",
        f"  1. Wait for it: `aws ec2 wait snapshot-completed --snapshot-ids {SNAP}`, or watch EC2 console → Snapshots",
        f"  2. Then create the instance: runctl aws create t3.micro --from-snapshot {SNAP}",
    ]
    assert err.value.exit_code == 4
