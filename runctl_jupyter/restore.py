"""``aws create TYPE --from-snapshot snap-…``: a new instance with a saved disk attached.

``terminate --snapshot`` saves an instance's disk as EBS snapshots (:func:`guard.snapshot_volumes`).
Restoring one launches the instance with a volume made from the snapshot at
:data:`ec2.RESTORE_DEVICE`. Snapshots are regional and a volume lives in one AZ: RunInstances makes
the volume in the new instance's own AZ, so only the region has to match, and that is checked (with
the snapshot's state) before anything is launched. The volume is deleted with the instance; the
snapshot stays until you delete it.

Where the checkpoints end up: on AWS, on that volume — mount it and copy them back (the lines
printed say how). In the sandbox, which has no block devices, the server copies the checkpoints the
snapshot holds into the new instance's ``runctl/<project>/checkpoints/`` when it launches it
(README: a gap the sandbox lists).
"""

from __future__ import annotations

from collections.abc import Callable

from .aws import ec2
from .aws.session import Context
from .errors import BackendError, Hint, Step, cmd
from .models import EbsSnapshot, Instance

Echo = Callable[[str], None]
MOUNT_POINT = "/mnt/runctl-restore"


def check_snapshot(ctx: Context, snapshot_id: str, instance_type: str) -> EbsSnapshot:
    """The snapshot, if a new instance in ``ctx.region`` can have it as a volume; else an error with steps."""
    try:
        snap = ec2.describe_snapshot(ctx, snapshot_id)
    except ec2.SnapshotNotFound as exc:
        raise ec2.SnapshotNotFound(exc.message, [
            cmd("resources list --all-regions", "Find its region: runctl's snapshots are listed with theirs"),
            cmd(f"aws create {instance_type} --from-snapshot {snapshot_id} --region REGION",
                "Then create the instance in that region"),
            Step(f"Or copy it into {ctx.region} (`aws ec2 copy-snapshot --source-region REGION "
                 f"--source-snapshot-id {snapshot_id} --region {ctx.region}`) and restore the copy"),
        ]) from exc
    if snap.state == "completed":
        return snap
    again = cmd(f"aws create {instance_type} --from-snapshot {snapshot_id}", "Then create the instance")
    if snap.state == "pending":
        raise BackendError(
            f"Snapshot {snapshot_id} is still being taken ({snap.progress or 'pending'}): a volume can be made "
            "from it once it is completed.",
            [Step(f"Wait for it: `aws ec2 wait snapshot-completed --snapshot-ids {snapshot_id}`, or watch "
                  "EC2 console → Snapshots"), again])
    raise BackendError(f"Snapshot {snapshot_id} is {snap.state}: no volume can be made from it.",
                       [cmd("resources list", "Pick another of runctl's snapshots (rows of kind snapshot)"),
                        Step("Check it in EC2 console → Snapshots (or the Recycle Bin)")])


def _about(snap: EbsSnapshot) -> str:
    parts = [f"{snap.size_gb} GB"]
    if snap.source_instance:
        parts.append(f"the disk of {snap.source_instance}")
    return ", ".join(parts)


def say_where(ctx: Context, inst: Instance, snap: EbsSnapshot, project: str, echo: Echo) -> None:
    """Where the restored checkpoints are, and (on AWS) how to reach them."""
    iid, world = inst.instance_id, ctx.world().label()
    listing = f"aws checkpoints {iid}"
    if ctx.is_sandbox:
        echo(Hint(f"[{world}] {snap.snapshot_id} ({_about(snap)}) is attached to {iid} as {ec2.RESTORE_DEVICE}; "
                  "the sandbox copied the checkpoints it holds into the instance's runctl/<project>/checkpoints/ "
                  "(on AWS you mount the volume and copy them). List them: `{}`", listing))
        return
    root = f"/home/{ctx.settings.remote_user}/runctl/{project}/checkpoints"
    echo(f"[{world}] {snap.snapshot_id} ({_about(snap)}) is attached to {iid} as {ec2.RESTORE_DEVICE}; the volume "
         "is deleted with the instance, the snapshot stays (it bills until you delete it).")
    echo("  Once it runs, copy its checkpoints back on the instance (a Nitro type shows the volume as /dev/nvme1n1, "
         "a Xen type as /dev/xvdf: `lsblk` tells; nouuid because it is a copy of an XFS root disk):")
    echo(f"    sudo mkdir -p {MOUNT_POINT} && sudo mount -o ro,nouuid /dev/nvme1n1p1 {MOUNT_POINT}")
    echo(f"    sudo mkdir -p {root} && sudo cp -an {MOUNT_POINT}{root}/. {root}/ && sudo umount {MOUNT_POINT}")
    echo(Hint("  Then `{}` lists them, and `train … --resume auto` resumes from them.", listing))
