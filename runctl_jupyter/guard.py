"""The checkpoint guard: what a path that could destroy a checkpoint may trust.

Refuse on doubt (DESIGN.md). ``terminate`` proceeds only on complete, fresh evidence that every
checkpoint of every project on the instance's disk has a verified copy in S3 (same size and MD5),
re-checked in S3 at that moment:
- a running instance is listed now (every project, paged under SSM's 24,000 characters, each page
  counted), and its copies are verified now;
- a stopped instance cannot be asked: runctl's ``stop`` leaves *evidence* (a manifest in S3 of every
  checkpoint it listed and verified, after every process of the run had ended; its digest, time and
  counts in the ``runctl:evidence`` tag). Evidence older than the instance's last start (it ran
  again, and was stopped by the guardian, the console or a shutdown), incomplete, or whose copies
  are no longer in S3, is doubt.
Doubt refuses with steps: inspect it (start it), save the disk first (``--snapshot``), or ``--force``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from urllib.parse import quote

from . import remote
from .aws import ec2, s3, ssm
from .aws.session import Context
from .errors import GuardRefused, cmd, translate_aws_errors
from .models import Instance, shown_name
from .remote.replies import UploadReply
from .tag_keys import CREATED_TAG, DEVICE_TAG, EVIDENCE_TAG, INSTANCE_TAG, PROJECT_TAG

Echo = Callable[[str], None]
MAX_LISTING_PAGES = 1000
# one upload command per batch of presigned URLs, each well inside SendCommand's 64 KB
UPLOAD_BATCH_BYTES = ssm.MAX_COMMAND_BYTES - 4096
SINGLE_PUT_MAX_BYTES = 5 * 1024 ** 3  # S3's largest single PUT; larger files go as multipart uploads
PART_BYTES = 512 * 1024 ** 2
MAX_PARTS = 10_000
DOCS_WARNING = "⚠️  WARNING: Instance {iid} has checkpoints that will be lost on termination."


@dataclass
class Checkpoint:
    relpath: str
    size: int
    md5: str
    mtime: int
    s3_key: str | None = None
    verified: bool = False
    project: str = ""


@dataclass
class Listing:
    """Checkpoints on an instance's disk, and whether the listing is known to be whole."""

    checkpoints: list[Checkpoint] = field(default_factory=list)
    doubt: str = ""  # why the listing may miss files ("" = complete)

    @property
    def complete(self) -> bool:
        return not self.doubt

    def unverified(self) -> list[Checkpoint]:
        return [ck for ck in self.checkpoints if not ck.verified]


def checkpoint_prefix(project: str, run_id: str | None = None) -> str:
    return f"runctl/{project}/checkpoints/" + (f"{run_id}/" if run_id else "")


def evidence_key(instance_id: str) -> str:
    return f"runctl/_evidence/{instance_id}.json"


# --- listing ---------------------------------------------------------------------------------------

def list_checkpoints(ctx: Context, instance_id: str, project: str | None) -> Listing:
    """Every checkpoint of ``project`` (``None``: of every project) on a running instance, page by
    page; a failed command, a page whose count does not match its lines, or totals that disagree
    make the listing doubtful instead of short."""
    env = ssm.remote_root_env(ctx)
    records, doubt = remote.read_pages(
        lambda start: ssm.run(ctx, instance_id, "checkpoints", [project or "--all", str(start)], env),
        "checkpoint", MAX_LISTING_PAGES)
    return Listing([Checkpoint(r["checkpoint"], int(r.get("size", 0)), r.get("md5", ""), int(r.get("mtime", 0)),
                               project=r.get("project", project or "")) for r in records],
                   f"the checkpoint listing on {instance_id}: {doubt}" if doubt else "")


def verify_copies(ctx: Context, bucket: str | None, project: str, checkpoints: list[Checkpoint]) -> None:
    """Mark checkpoints that have a copy in S3 of the same size whose MD5, stored with the object by
    runctl's upload (``x-amz-meta-runctl-md5``, signed; S3 checked the body against ``Content-MD5``),
    equals the instance's. An ETag is never taken for an MD5 (multipart, SSE-KMS): a copy without
    runctl's checksum stays unverified, which is doubt, never a false yes."""
    for ck in checkpoints:
        ck.s3_key, ck.verified = None, False
    if not bucket or not checkpoints:
        return
    copies = s3.list_objects(ctx, bucket, checkpoint_prefix(project))
    by_name: dict[str, list[s3.S3Object]] = {}
    for rel, obj in copies.items():
        by_name.setdefault(rel.split("/", 1)[-1], []).append(obj)
    same_size = {obj.key for ck in checkpoints for obj in by_name.get(ck.relpath, []) if obj.size == ck.size}
    stored = s3.stored_md5s(ctx, bucket, sorted(same_size))
    for ck in checkpoints:
        for obj in by_name.get(ck.relpath, []):
            if obj.key in same_size and ck.md5 and stored.get(obj.key) == ck.md5:
                ck.s3_key, ck.verified = obj.key, True


def verify_all(ctx: Context, bucket: str | None, checkpoints: list[Checkpoint]) -> None:
    for name in sorted({ck.project for ck in checkpoints}):
        verify_copies(ctx, bucket, name, [ck for ck in checkpoints if ck.project == name])


@dataclass
class _Multipart:
    checkpoint: Checkpoint
    key: str
    upload_id: str
    parts: int
    etags: dict[int, str] = field(default_factory=dict)
    failed: str = ""  # why a part did not arrive


def part_size_for(size: int) -> int:
    """Parts of PART_BYTES, larger when S3's 10,000-part limit needs it."""
    return max(PART_BYTES, -(-size // MAX_PARTS))


def upload_checkpoints(ctx: Context, instance_id: str, project: str, run_id: str,
                       checkpoints: list[Checkpoint], bucket: str, echo: Echo) -> list[Checkpoint]:
    """Send unverified checkpoints to S3 with presigned URLs (batched SendCommands), then verify in S3.

    A file up to SINGLE_PUT_MAX_BYTES goes as one PUT signed with its MD5; a larger one as a multipart
    upload (presigned ``UploadPart`` URLs, each part sent with its own ``Content-MD5``, the instance
    refusing a part of a file whose size or mtime changed since it was listed), completed here, or
    aborted when any part failed."""
    verify_copies(ctx, bucket, project, checkpoints)
    todo = [ck for ck in checkpoints if not ck.verified and ck.md5]
    if not todo:
        return checkpoints
    env = ssm.remote_root_env(ctx)
    multiparts: dict[str, _Multipart] = {}
    batch = ""  # upload.sh's stdin, one line per PUT: URLs never in an argv
    try:
        for line in _upload_lines(ctx, project, run_id, todo, bucket, multiparts):
            if batch and ssm.command_bytes(remote.command_for("upload", [project], env, stdin=batch + line)) \
                    > UPLOAD_BATCH_BYTES:
                _upload_batch(ctx, instance_id, project, batch, env, echo, multiparts)
                batch = ""
            batch += line
        _upload_batch(ctx, instance_id, project, batch, env, echo, multiparts)
    except BaseException:
        for mp in multiparts.values():  # no started upload is left behind to bill
            s3.finish_multipart(ctx, bucket, mp.key, mp.upload_id, None)
        raise
    for mp in multiparts.values():
        whole = not mp.failed and sorted(mp.etags) == list(range(1, mp.parts + 1))
        s3.finish_multipart(ctx, bucket, mp.key, mp.upload_id, mp.etags if whole else None)
        if not whole:
            echo(f"  upload failed: {shown_name(mp.checkpoint.relpath)} ({len(mp.etags)} of {mp.parts} parts arrived"
                 f"{'; ' + mp.failed if mp.failed else ''}; the multipart upload was aborted)")
    verify_copies(ctx, bucket, project, checkpoints)
    return checkpoints


def _upload_lines(ctx: Context, project: str, run_id: str, todo: list[Checkpoint], bucket: str,
                  multiparts: dict[str, _Multipart]) -> Iterator[str]:
    for ck in todo:
        rel, key = quote(ck.relpath, safe=""), checkpoint_prefix(project, run_id) + ck.relpath
        if ck.size <= SINGLE_PUT_MAX_BYTES:
            yield f"put {rel} {ck.md5} {s3.presign_put(ctx, bucket, key, ck.md5)}\n"
            continue
        step = part_size_for(ck.size)
        mp = multiparts[ck.relpath] = _Multipart(ck, key, s3.start_multipart(ctx, bucket, key, ck.md5),
                                                 -(-ck.size // step))
        for n in range(1, mp.parts + 1):
            offset = (n - 1) * step
            yield (f"part {rel} {n} {offset} {min(step, ck.size - offset)} {ck.size} {ck.mtime} "
                   f"{s3.presign_part(ctx, bucket, key, mp.upload_id, n)}\n")


def _upload_batch(ctx: Context, instance_id: str, project: str, lines: str, env: dict[str, str],
                  echo: Echo, multiparts: dict[str, _Multipart]) -> None:
    result = ssm.run(ctx, instance_id, "upload", [project], env, stdin=lines)
    reply = UploadReply.parse(result.stdout)
    for part in reply.parts:
        if part.relpath in multiparts:
            multiparts[part.relpath].etags[part.n] = part.etag
    for failed in reply.failed:
        if failed.relpath in multiparts:  # said once per file, when it is aborted
            mp = multiparts[failed.relpath]
            mp.failed = mp.failed or f"part {failed.n if failed.n is not None else '?'}: {failed.reason}"
        else:
            echo(f"  upload failed: {shown_name(failed.relpath)} ({failed.reason})")
    if result.status != "Success" and not reply.finished:
        echo(f"  the upload command on {instance_id} ended {result.status}")


# --- evidence left by stop -----------------------------------------------------------------------

def record_evidence(ctx: Context, inst: Instance, listing: Listing, bucket: str | None) -> None:
    """What a later terminate of the stopped instance may trust: the manifest in S3, its digest in a tag."""
    made = ctx.now().replace(microsecond=0)
    doubt = listing.doubt or ("" if bucket or not listing.checkpoints else "no S3 bucket is configured")
    manifest = {"version": 1, "instance_id": inst.instance_id, "made_at": made.isoformat(), "doubt": doubt,
                "checkpoints": [asdict(ck) for ck in listing.checkpoints]}
    body = json.dumps(manifest, sort_keys=True).encode()
    digest = hashlib.sha256(body).hexdigest()[:16]
    if bucket:
        s3.put_bytes(ctx, bucket, evidence_key(inst.instance_id), body)
    verified = sum(ck.verified for ck in listing.checkpoints)
    ec2.set_tags(ctx, inst.instance_id, {EVIDENCE_TAG: f"v1 {made.isoformat()} {len(listing.checkpoints)} "
                                                       f"{verified} {0 if doubt else 1} {digest}"})


def _evidence_doubt(ctx: Context, inst: Instance, bucket: str | None) -> tuple[str, list[Checkpoint]]:
    """Why the stopped instance's evidence cannot be trusted ("" = it can), and what it lists."""
    parts = inst.tags.get(EVIDENCE_TAG, "").split()
    if len(parts) != 6 or parts[0] != "v1":
        return "runctl has no record of what is on its disk (it was not stopped by runctl's stop)", []
    made, total, digest = datetime.fromisoformat(parts[1]), int(parts[2]), parts[5]
    if inst.launch_time is not None and made < inst.launch_time:
        return ("runctl's record of its disk predates its last start: it ran again since, and was stopped "
                "by something else (the guardian, the console, a shutdown)"), []
    if parts[4] == "1" and total == 0:
        return "", []
    if not bucket:
        return ("no S3 bucket is configured, so no checkpoint has a copy" if parts[4] == "1"
                else "runctl's stop could not list and verify every checkpoint on its disk"), []
    with translate_aws_errors(f"read runctl's record of {inst.instance_id}'s disk"):
        try:
            body = s3.get_bytes(ctx, bucket, evidence_key(inst.instance_id))
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return f"runctl's record of its disk is gone from s3://{bucket}", []
            raise
    if hashlib.sha256(body).hexdigest()[:16] != digest:
        return "runctl's record of its disk in S3 does not match the one the instance was tagged with", []
    manifest = json.loads(body)
    if parts[4] != "1":
        return f"runctl's stop could not list and verify every checkpoint on its disk ({manifest['doubt']})", []
    checkpoints = [Checkpoint(**ck) for ck in manifest["checkpoints"]]
    verify_all(ctx, bucket, checkpoints)  # re-checked in S3 now: copies may have been deleted since
    return "", checkpoints


# --- terminate ---------------------------------------------------------------------------------------

def guard_terminate(ctx: Context, inst: Instance, *, force: bool, snapshot: bool, echo: Echo) -> None:
    """Return when terminating ``inst`` loses no checkpoint (or ``--force``/``--snapshot`` says how);
    otherwise raise :class:`GuardRefused` with the docs' warning and steps."""
    iid = inst.instance_id
    bucket = s3.bucket_for(ctx, None, required=False)
    if inst.state == "running":
        listing = list_checkpoints(ctx, iid, None)
        verify_all(ctx, bucket, listing.checkpoints)
        doubt, checkpoints = listing.doubt, listing.checkpoints
    else:
        doubt, checkpoints = _evidence_doubt(ctx, inst, bucket)
    unsaved = [ck for ck in checkpoints if not ck.verified]
    if not doubt and not unsaved:
        if checkpoints:
            where = ", ".join(f"s3://{bucket}/{checkpoint_prefix(name)}"
                              for name in sorted({ck.project for ck in checkpoints}))
            echo(f"Every checkpoint has a verified copy in {where}")
        return
    paths = [f"runctl/{ck.project}/checkpoints/{ck.relpath}" for ck in unsaved]
    if force:
        lost = f"{len(paths)} checkpoint(s) without an S3 copy" if paths else f"whatever is on its disk ({doubt})"
        echo(f"⚠️  Terminating with --force: {lost} will be lost.")
        return
    if snapshot:
        snapshot_volumes(ctx, inst, echo)
        return
    raise _refusal(inst, bucket, doubt, paths, checkpoints)


def _refusal(inst: Instance, bucket: str | None, doubt: str, paths: list[str],
             checkpoints: list[Checkpoint]) -> GuardRefused:
    iid = inst.instance_id
    details = [DOCS_WARNING.format(iid=iid)]
    if doubt:
        details.append(f"   runctl cannot tell what would be lost: {doubt}.")
    details += [f"   Checkpoint: {shown_name(p)}" for p in paths[:10]]
    if len(paths) > 10:
        details.append(f"   … and {len(paths) - 10} more")
    saved = [ck for ck in checkpoints if ck.verified]
    if bucket and saved:
        details.append(f"   Note: {len(saved)} checkpoint(s) already have verified copies in s3://{bucket}/runctl/")
    if inst.state == "running" and inst.one_time_spot:
        # a one-time spot instance cannot be stopped: runctl's stop uploads, then terminates it
        details.append("   Consider using 'stop' instead: on this one-time spot instance it uploads the "
                       "checkpoints to S3, then terminates it (AWS cannot stop it).")
    elif inst.state == "running":
        details.append("   Consider using 'stop' instead to preserve checkpoints.")  # the runctl docs' words
    details.append("   Use --force to terminate anyway (checkpoints will be lost).")
    if inst.state == "running":
        steps = [cmd(f"aws stop {iid}", "Stop instead (uploads checkpoints to S3 when a bucket is set)")]
    else:
        steps = [cmd(f"aws start {iid} --wait", "Start it, so that runctl can list and upload its checkpoints"),
                 cmd(f"aws stop {iid}", "Then stop it again (the stop leaves a verified record)")]
    steps += [cmd(f"aws terminate {iid} --snapshot", "Or save its disk as an EBS snapshot first, then terminate"),
              cmd(f"aws terminate {iid} --force", "Or terminate anyway (checkpoints will be lost)")]
    if inst.state == "running":  # the runctl docs' words
        message = "Termination blocked: instance has checkpoints. Use --force to override or use 'stop' instead."
    else:  # `stop` does nothing to a stopped instance: say what is missing instead
        message = (f"Termination blocked: runctl cannot confirm that every checkpoint on {inst.state} "
                   f"instance {iid}'s disk has a verified copy in S3.")
    return GuardRefused(message, steps, details=details)


def snapshot_volumes(ctx: Context, inst: Instance, echo: Echo) -> list[str]:
    """EBS snapshots of every volume of ``inst``, tagged, waited for until completed."""
    client = ctx.client("ec2")
    with translate_aws_errors(f"snapshot the volumes of {inst.instance_id}", inst.instance_id):
        data = client.describe_instances(InstanceIds=[inst.instance_id])["Reservations"][0]["Instances"][0]
        volumes = [(m["DeviceName"], m["Ebs"]["VolumeId"]) for m in data.get("BlockDeviceMappings", [])
                   if m.get("Ebs", {}).get("VolumeId")]
        if not volumes:
            raise GuardRefused(f"{inst.instance_id} has no EBS volume to snapshot.",
                               [cmd(f"aws terminate {inst.instance_id} --force", "Terminate anyway")])
        day = ctx.now().date().isoformat()
        ids = []
        for device, volume in volumes:
            tags = [{"Key": INSTANCE_TAG, "Value": inst.instance_id},
                    {"Key": PROJECT_TAG, "Value": inst.tags.get(PROJECT_TAG, "")},
                    {"Key": DEVICE_TAG, "Value": device}, {"Key": CREATED_TAG, "Value": day},
                    {"Key": "Name", "Value": f"runctl {inst.instance_id} {device} {day}"}]
            snap = client.create_snapshot(VolumeId=volume, Description=f"runctl: disk of {inst.instance_id} "
                                          f"({device}) before terminate",
                                          TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])
            ids.append(snap["SnapshotId"])
        echo(f"Saving {inst.instance_id}'s disk as snapshot(s) {', '.join(ids)} (waiting until complete)…")
        delay, deadline = ec2.wait_limits(ctx)
        client.get_waiter("snapshot_completed").wait(
            SnapshotIds=ids, WaiterConfig={"Delay": delay * 3, "MaxAttempts": max(1, round(6 * deadline / (delay * 3)))})
    echo(cmd(f"aws create {inst.instance_type} --from-snapshot "  # the root disk's: runctl's files are there
             f"{dict(zip([d for d, _ in volumes], ids, strict=True)).get(data.get('RootDeviceName'), ids[0])}")
         .said(f"Snapshot(s) {', '.join(ids)} complete. To restore: `{{}}` (a new instance with the saved disk "
               "attached), or EC2 console → Snapshots → Actions → Create volume. They bill as EBS snapshot storage "
               "until you delete them (the cost table lists them)."))
    return ids
