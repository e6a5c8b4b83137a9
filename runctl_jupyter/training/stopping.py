"""What stop does for a training before the instance stops: SIGTERM and wait, list and upload the
checkpoints, record the evidence a later terminate checks; the cost ledger; one-time spot instances."""

from __future__ import annotations

from .. import guard
from ..aws import ec2, s3, ssm
from ..aws.session import Context
from ..errors import GuardRefused, cmd
from ..guard import Listing
from ..models import Instance
from ..remote.replies import StopReply
from ..tag_keys import RUN_ID_TAG
from .runs import Echo, project_for_instance, tag_run


def before_stop(ctx: Context, inst: Instance, *, force: bool, echo: Echo) -> Listing:
    """SIGTERM the training and wait (bounded) for it to save; then, once every process of the run is
    gone, list the checkpoints of every project on the disk, upload those without a verified copy and
    record what was found (the evidence a later terminate of the stopped instance checks)."""
    iid = inst.instance_id
    bucket = s3.bucket_for(ctx, None, required=False)
    if inst.state != "running":
        return Listing(doubt=f"{iid} was {inst.state}: runctl could not list its disk")
    if iid not in ec2.ssm_online(ctx, [iid]):
        echo(f"⚠️  {iid}'s SSM agent is not Online: runctl cannot ask a training there to "
             "checkpoint or upload its checkpoints before stopping.")
        listing = Listing(doubt="its SSM agent was not Online when it was stopped: runctl could not list its disk")
        guard.record_evidence(ctx, inst, listing, bucket)
        return listing
    project = project_for_instance(ctx, inst, None)
    wait_s = 0 if force else ctx.settings.stop_wait_seconds
    result = ssm.run(ctx, iid, "stop", [project, str(wait_s)], ssm.remote_root_env(ctx))
    reply = StopReply.parse(result.stdout)
    run_id = reply.run_id or inst.tags.get(RUN_ID_TAG) or "unknown-run"
    if reply.stopped:
        if reply.still_running:
            how = "some of its processes survived SIGKILL; they end with the instance"
        elif reply.killed:
            how = (f"it did not exit within {wait_s} s, so runctl ended it (SIGKILL): a checkpoint it was "
                   "still writing is lost (`config set stop_wait_seconds N` gives it longer)")
        else:
            how = f"it exited with code {reply.exit_code}"
        echo(f"Asked training run {run_id} (PID {reply.pid}) to checkpoint and stop (SIGTERM): {how}")
        tag_run(ctx, iid, run_id, "stopped")
    listing = guard.list_checkpoints(ctx, iid, None)
    if reply.still_running and not listing.doubt:
        listing.doubt = "some of the training's processes survived SIGKILL and may have written more"
    if listing.checkpoints and bucket is None:
        echo(f"{len(listing.checkpoints)} checkpoint(s) stay on the instance's disk (no S3 bucket configured: "
             "`runctl config set bucket NAME` to keep copies)")
    elif listing.checkpoints and bucket is not None:
        for name in sorted({ck.project for ck in listing.checkpoints}):
            # checkpoints of other projects on the disk go up too, under a prefix naming this instance
            guard.upload_checkpoints(ctx, iid, name, run_id if name == project else f"kept-{iid}",
                                     [ck for ck in listing.checkpoints if ck.project == name], bucket, echo)
        saved = [ck for ck in listing.checkpoints if ck.verified]
        echo(f"Saved {len(saved)}/{len(listing.checkpoints)} checkpoint(s) to s3://{bucket}/runctl/"
             + (f" (newest: {sorted(saved, key=lambda c: c.mtime)[-1].s3_key})" if saved else ""))
    if listing.doubt:
        echo(f"⚠️  {listing.doubt}: a later terminate will refuse until runctl can list the disk again.")
    guard.record_evidence(ctx, inst, listing, bucket)
    return listing


def record_stop(ctx: Context, inst: Instance) -> None:
    """Add the run that just ended to the instance's cost ledger (LaunchTime resets on start)."""
    from ..costs import ledger_after_stop
    from ..resources import price_book

    if not inst.managed or inst.launch_time is None:
        return
    book = price_book(ctx)
    quote = (book.spot(inst.region, inst.availability_zone, inst.instance_type) if inst.lifecycle == "spot"
             else book.on_demand(inst.region, inst.instance_type))
    if quote.usd_per_hour is None:
        return
    ec2.set_tags(ctx, inst.instance_id, ledger_after_stop(inst.tags, inst.launch_time, ctx.now(), quote.usd_per_hour))


def end_spot_instance(ctx: Context, inst: Instance, *, wait: bool, echo: Echo, listing: Listing,
                      force: bool = False) -> Instance:
    """A one-time spot instance cannot be stopped, only terminated: only once every checkpoint on its
    disk has a verified copy (or with --force); otherwise it keeps running and the user is told why."""
    iid = inst.instance_id
    world = ctx.world().label()
    unsaved = listing.unverified()
    if (listing.doubt or unsaved) and not force:
        why = listing.doubt or f"{len(unsaved)} checkpoint(s) on its disk have no verified copy in S3"
        raise GuardRefused(
            f"{iid} is a one-time spot instance (AWS cannot stop it, only terminate it); runctl kept it "
            f"running because {why}.",
            [cmd(f"aws checkpoints {iid}", "See its checkpoints and which have S3 copies"),
             cmd("config set bucket NAME", "Without a bucket: set one") if not s3.bucket_for(ctx, None, required=False)
             else cmd(f"aws stop {iid}", "Try the stop again (it uploads what has no copy)"),
             cmd(f"aws terminate {iid} --snapshot", "Or save its disk as an EBS snapshot, then terminate"),
             cmd(f"aws terminate {iid} --force", "Or terminate anyway (those checkpoints will be lost)")],
            details=[f"   Checkpoint: runctl/{ck.project}/checkpoints/{ck.relpath}" for ck in unsaved[:10]])
    handled = (f"Its {len(listing.checkpoints)} checkpoint(s) have verified copies in S3" if listing.checkpoints
               else "It holds no checkpoints")
    echo(f"[{world}] {iid} is a one-time spot instance: AWS cannot stop it, only terminate it. "
         f"{handled}; terminating it now.")
    ec2.terminate(ctx, iid)
    if wait:
        ec2.wait_for(ctx, iid, "terminated", echo)
    return ec2.describe(ctx, iid)
