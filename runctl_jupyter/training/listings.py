"""The checkpoints and runs of a project on an instance, as DataFrames."""

from __future__ import annotations

import json

from .. import guard, remote
from ..aws import ec2, s3, ssm
from ..aws.session import Context
from ..guard import checkpoint_prefix
from ..models import validate_instance_id
from .runs import project_for_instance, running_instance


def checkpoints_frame(ctx: Context, instance_id: str, project: str | None = None):
    import pandas as pd

    inst = ec2.describe(ctx, validate_instance_id(instance_id))
    project = project_for_instance(ctx, inst, project)
    listing = guard.list_checkpoints(ctx, instance_id, project) if inst.state == "running" else guard.Listing()
    on_instance = listing.checkpoints
    bucket = s3.bucket_for(ctx, None, required=False)
    guard.verify_copies(ctx, bucket, project, on_instance)
    rows = [{"where": "instance", "checkpoint": ck.relpath, "size": ck.size, "md5": ck.md5,
             "modified": pd.Timestamp(ck.mtime, unit="s", tz="UTC"), "s3_copy": ck.s3_key or ""}
            for ck in on_instance]
    if bucket:
        copies = s3.list_objects(ctx, bucket, checkpoint_prefix(project))
        stored = s3.stored_md5s(ctx, bucket, [obj.key for obj in copies.values()])
        for rel, obj in copies.items():
            rows.append({"where": "s3", "checkpoint": rel, "size": obj.size, "md5": stored.get(obj.key) or "",
                         "modified": pd.NaT, "s3_copy": f"s3://{bucket}/{obj.key}"})
    df = pd.DataFrame(rows, columns=["where", "checkpoint", "size", "md5", "modified", "s3_copy"])
    df.attrs["runctl_kind"] = "checkpoints"
    df.attrs["runctl_caption"] = (f"Checkpoints of project {project} ({ctx.world().label()})"
                                  + (f" — PARTIAL: {listing.doubt}; run it again" if listing.doubt else ""))
    return df


def runs_frame(ctx: Context, instance_id: str, project: str | None = None):
    import pandas as pd

    inst = running_instance(ctx, instance_id, "read its run history")
    project = project_for_instance(ctx, inst, project)
    env = ssm.remote_root_env(ctx)
    records, partial = remote.read_pages(
        lambda start: ssm.run(ctx, instance_id, "runs", [project, str(start)], env), "run")
    rows = []
    for r in records:  # newest first
        args = r.get("args_json") or "[]"
        try:
            args_list = json.loads(args)
        except json.JSONDecodeError:
            args_list = [args]
        rows.append({"run_id": r["run"], "script": r.get("script", ""), "args": args_list,
                     "started": pd.to_datetime(r.get("started") or None, utc=True),
                     "ended": pd.to_datetime(r.get("ended") or None, utc=True),
                     # a run SIGTERMed by stop or the guardian exited because it was told to
                     "state": "stopped" if r.get("state") == "exited" and r.get("stopped") == "1"
                     else r.get("state", ""),
                     "exit_code": pd.to_numeric(r.get("exit_code") or None),
                     "last_checkpoint": r.get("last_checkpoint", "")})
    df = pd.DataFrame(rows, columns=["run_id", "script", "args", "started", "ended", "state", "exit_code",
                                     "last_checkpoint"])
    df["exit_code"] = df["exit_code"].astype("Int64")
    df.attrs["runctl_kind"] = "runs"
    df.attrs["runctl_caption"] = (f"Runs of project {project} on {instance_id} ({ctx.world().label()}), newest first"
                                  + (f" — PARTIAL: {partial}; run it again" if partial else ""))
    return df
