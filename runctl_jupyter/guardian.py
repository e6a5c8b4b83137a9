"""The notebook side of the on-instance guardian (``remote/guardian.sh``) and of ``--resume auto``.

At ``train`` time this module decides what the guardian watches (spot notices, ``--autostop``,
``--max-hours``, ``--max-cost``), how it will upload checkpoints when nobody is watching, and hands it
what it needs in the launch command (round trip 2, no extra SSM call):

- **uploads**: with the instance role when the instance has an instance profile (and the AWS CLI is
  on it), else with a *presigned S3 POST* whose policy allows any key under
  ``runctl/<project>/checkpoints/<run-id>/`` — so the guardian uploads checkpoints under their real
  names (the same keys ``stop`` uses; ``terminate``'s guard and ``--resume auto`` see them). The
  POST is kept as a fallback in role mode too.
- **what goes up**: when the instance stops, the newest checkpoint (its disk stays); on a spot notice
  and before terminating a one-time spot instance, every checkpoint of the project (newest first), and
  the guardian terminates only once all went up and no other project's checkpoints are on the disk —
  otherwise it keeps the instance running, and its record (``uploaded`` of ``upload_total``,
  ``instance=kept running: …``) and the run log say why (:func:`describe_record` shows it in status).
- **stopping the instance**: a presigned EC2 ``StopInstances`` (``TerminateInstances`` for a one-time
  spot instance) GET for this instance only: no instance role needed. On AWS, once it has expired,
  the guardian falls back to ``shutdown -h now`` (instance-initiated shutdown behaviour = stop).
- Presigned URLs die with temporary (SSO / assumed-role) credentials and SigV4 caps them at 7 days:
  :func:`url_window` works out until when they are valid; :func:`check_coverage` refuses an
  ``--autostop`` / ``--max-hours`` / ``--max-cost`` horizon they cannot cover, unless a role is there.

URLs are secrets: they travel in the launch command's environment, ``launch.sh`` moves them into
mode-600 files in the run directory before the training starts, and nothing prints or logs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import GuardRefused, Step, UsageError, cmd
from .remote.replies import GuardianRecord
from .tag_keys import GUARDIAN_TAG, RUN_ID_TAG

if TYPE_CHECKING:
    from .aws.session import Context
    from .models import Instance

Echo = Callable[[str], None]
MAX_URL_SECONDS = 7 * 24 * 3600          # SigV4 presigned URLs cannot outlive 7 days
UNKNOWN_TEMPORARY_SECONDS = 3600         # temporary credentials whose expiry boto3 does not tell
MARGIN_SECONDS = 300                     # a URL must still be valid this long after the guardian acts
SANDBOX_POLL = "0.5"
# how often a fleet node's guardian lists the other nodes' ends: one S3 LIST ($0.005 per 1,000) per
# node every 30 s on AWS is under 3,000 a day; in the sandbox, every 2 s. It acts on the second list
# that shows an end, so that a runctl following the run (log_poll) acts first.
FLEET_POLL_S = 30
SANDBOX_FLEET_POLL = "2"
FETCH_URL_SECONDS = 3600


@dataclass
class Request:
    """What ``train`` asked the guardian for (flags), before it is planned against an instance."""

    autostop_s: float | None = None
    max_hours: float | None = None
    max_cost: float | None = None
    poll: str | None = None               # seconds between IMDS polls (default: 5 on AWS, 0.5 in the sandbox)
    fleet_node: int | None = None         # this run is node N of a fleet run: watch the other nodes' ends
    fleet_instances: tuple[str, ...] = ()  # every node's instance, in node order


@dataclass
class Plan:
    spot: bool
    autostop_s: float | None
    max_seconds: float | None
    max_cost: float | None
    price_per_hour: float | None
    price_source: str | None
    mode: str                             # "instance-role" | "presigned"
    urls_valid_until: datetime
    end: str                              # "stop" | "terminate"
    extra_env: dict[str, str] = field(default_factory=dict)
    fleet_node: int | None = None
    fleet_instances: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.spot or self.fleet_node is not None or bool(self.autostop_s or self.max_seconds or self.max_cost)

    def watching(self) -> str:
        """``watching: spot, autostop 30m, max 12h/$20`` — the runctl:guardian tag (≤ 256 chars)."""
        parts = ["spot"] if self.spot else []
        if self.autostop_s:
            parts.append(f"autostop {_fmt_duration(self.autostop_s)}")
        caps = []
        if self.max_seconds:
            caps.append(_fmt_duration(self.max_seconds))
        if self.max_cost:
            caps.append(f"${self.max_cost:g}")
        if caps:
            parts.append("max " + "/".join(caps))
        if self.fleet_node is not None:
            parts.append("fleet peers")
        return "watching: " + ", ".join(parts)


_PLANS: dict[tuple[str, str], Plan] = {}  # (instance, run id) → plan (for the tag written once the run started)


# --- pure decisions (unit-tested with fake credentials) ---------------------------------------------

def url_window(credentials: Any, now: datetime) -> tuple[bool, datetime]:
    """(temporary?, until when presigned URLs signed with ``credentials`` stay valid)."""
    cap = now + timedelta(seconds=MAX_URL_SECONDS)
    token = getattr(credentials, "token", None)
    if token is None:
        return False, cap
    expiry = getattr(credentials, "_expiry_time", None)
    if expiry is None:
        return True, min(cap, now + timedelta(seconds=UNKNOWN_TEMPORARY_SECONDS))
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    return True, min(cap, expiry)


def horizon_seconds(request: Request, price_per_hour: float | None) -> float:
    """How long after the start the guardian may still need to upload.

    The budget caps end the run at the first one reached; ``--autostop`` counts from the end of the
    training, so at least its own duration is needed.
    """
    caps = []
    if request.max_hours:
        caps.append(request.max_hours * 3600)
    if request.max_cost and price_per_hour:
        caps.append(request.max_cost / price_per_hour * 3600)
    return max(request.autostop_s or 0.0, min(caps) if caps else 0.0)


def check_coverage(request: Request, *, instance_id: str, has_role: bool, temporary: bool,
                   valid_until: datetime, now: datetime, price_per_hour: float | None = None) -> None:
    """Refuse limits the presigned URLs cannot cover (no refusal when the instance has a role)."""
    if has_role:
        return
    need = horizon_seconds(request, price_per_hour)
    have = (valid_until - now).total_seconds() - MARGIN_SECONDS
    if need <= have:
        return
    flags = ", ".join(f for f, v in (("--autostop", request.autostop_s), ("--max-hours", request.max_hours),
                                     ("--max-cost", request.max_cost)) if v)
    why = ("your AWS credentials are temporary (SSO / assumed role) and expire at "
           f"{valid_until.isoformat(timespec='minutes')}" if temporary
           else "presigned URLs cannot outlive 7 days")
    raise GuardRefused(
        f"The guardian could not upload checkpoints that late: {flags} reaches "
        f"{_fmt_duration(need)} after the start, but its presigned URLs stop working in "
        f"{_fmt_duration(max(0.0, have + MARGIN_SECONDS))} ({why}).",
        [Step(f"Give {instance_id} an instance profile allowing s3:PutObject on the bucket (and the AWS CLI "
              "on the image), then `config set guardian_upload instance-role`: the guardian uploads with the role"),
         Step(f"Or ask for less: a limit under {_fmt_duration(max(0.0, have))}"),
         Step("Or use credentials that last longer (`aws sso login` again just before, or long-term keys)")],
    )


def _fmt_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    if seconds >= 60:
        return f"{seconds / 60:.1f}m"
    return f"{seconds:g}s"


# --- planning against an instance -----------------------------------------------------------------

def plan(ctx: Context, inst: Instance, request: Request | None) -> Plan | None:
    """What the guardian of a run on ``inst`` does; None when there is nothing to watch."""
    request = request or Request()
    spot = inst.lifecycle == "spot"
    if not (spot or request.autostop_s or request.max_hours or request.max_cost or request.fleet_node is not None):
        return None
    from .resources import price_book

    price = source = None
    if request.max_cost:
        book = price_book(ctx)
        quote = (book.spot(inst.region, inst.availability_zone, inst.instance_type) if spot
                 else book.on_demand(inst.region, inst.instance_type))
        price, source = quote.usd_per_hour, str(getattr(quote, "source", "") or "")
        if price is None:
            raise UsageError(f"--max-cost needs the hourly price of {inst.instance_type}, which is unknown here.",
                             [Step("Use --max-hours instead"), cmd("resources list", "See which prices are known")])
    credentials = ctx.session.get_credentials()
    # The world's clock: real UTC on AWS; in the sandbox its clock, so the "valid until" a user reads
    # matches the sandbox's dates (the window is relative: ExpiresIn is ``until - now`` either way).
    now = ctx.now()
    temporary, until = url_window(credentials, now)
    if ctx.is_sandbox:
        temporary, until = False, now + timedelta(seconds=MAX_URL_SECONDS)
    # An instance profile alone proves nothing about S3 (the SSM one has no s3:PutObject): the role
    # uploads only when the user says it may (guardian_upload = instance-role).
    has_role = ctx.settings.guardian_upload == "instance-role"
    if has_role and not inst.iam_instance_profile:
        raise UsageError(f"guardian_upload is instance-role, but {inst.instance_id} has no instance profile.",
                         [Step("Attach an instance profile whose role may s3:PutObject on the bucket"),
                          cmd("config set guardian_upload presigned", "Or let the guardian use presigned URLs")])
    check_coverage(request, instance_id=inst.instance_id, has_role=has_role, temporary=temporary,
                   valid_until=until, now=now, price_per_hour=price)
    return Plan(spot=spot, autostop_s=request.autostop_s,
                max_seconds=request.max_hours * 3600 if request.max_hours else None,
                max_cost=request.max_cost, price_per_hour=price, price_source=source,
                mode="instance-role" if has_role else "presigned", urls_valid_until=until,
                end="terminate" if inst.one_time_spot else "stop",
                extra_env={"RUNCTL_GUARDIAN_POLL": request.poll} if request.poll else {},
                fleet_node=request.fleet_node, fleet_instances=request.fleet_instances)


def _curl_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _post_config(presigner: Any, bucket: str, prefix: str, ttl: int, max_bytes: int) -> str:
    """A curl config (``-K``) for a presigned S3 POST of any key under ``prefix`` (≤ ``max_bytes``):
    the URL and the signed form fields; the caller adds ``key`` and ``file``. A secret: never print it."""
    post = presigner.generate_presigned_post(bucket, prefix + "${filename}", ExpiresIn=ttl,
                                             Conditions=[["content-length-range", 0, max_bytes]])
    lines = [f"url = {_curl_quote(post['url'])}"]
    lines += [f"form-string = {_curl_quote(f'{k}={v}')}" for k, v in post["fields"].items() if k != "key"]
    return "\n".join(lines)


def launch_env(ctx: Context, inst: Instance, p: Plan, project: str, run_id: str, bucket: str) -> dict[str, str]:
    """The launch command's environment for the guardian (secrets included: never print it)."""
    from .aws import s3
    from .guard import checkpoint_prefix

    ttl = max(60, int((p.urls_valid_until - ctx.now()).total_seconds()) - 60)
    prefix = checkpoint_prefix(project, run_id)
    ec2_client = ctx.client("ec2")
    action = "terminate_instances" if p.end == "terminate" else "stop_instances"
    end_url = ec2_client.generate_presigned_url(action, Params={"InstanceIds": [inst.instance_id]}, ExpiresIn=ttl)
    env = {
        "RUNCTL_GUARDIAN": "1",
        "RUNCTL_GUARDIAN_SPOT": "1" if p.spot else "0",
        "RUNCTL_GUARDIAN_END": p.end,
        "RUNCTL_GUARDIAN_BUCKET": bucket,
        "RUNCTL_GUARDIAN_ROLE": "1" if p.mode == "instance-role" else "0",
        "RUNCTL_GUARDIAN_WATCHING": p.watching().removeprefix("watching: "),
        "RUNCTL_G_S3POST": _post_config(s3.presigner(ctx, bucket), bucket, prefix, ttl, 5 * 1024 ** 3),
        ("RUNCTL_G_TERMINATE" if p.end == "terminate" else "RUNCTL_G_STOP"): f"url = {_curl_quote(end_url)}",
    }
    if ctx.is_sandbox:
        env["RUNCTL_GUARDIAN_POLL"] = SANDBOX_POLL
    else:
        env["RUNCTL_GUARDIAN_ALLOW_SHUTDOWN"] = "1"
    if p.autostop_s:
        env["RUNCTL_GUARDIAN_AUTOSTOP"] = f"{p.autostop_s:g}"
    if p.max_seconds:
        env["RUNCTL_GUARDIAN_MAX_SECONDS"] = f"{p.max_seconds:.3f}"
    if p.max_cost and p.price_per_hour:
        env["RUNCTL_GUARDIAN_MAX_COST"] = f"{p.max_cost:.4f}"
        env["RUNCTL_PRICE_PER_HOUR"] = f"{p.price_per_hour:.6f}"
    if p.fleet_node is not None:
        env.update(_fleet_watch_env(ctx, p.fleet_node, p.fleet_instances, project, run_id, bucket, ttl))
    env.update(p.extra_env)
    return env


def fleet_ends_prefix(project: str, run_id: str) -> str:
    """Where the nodes of a fleet run say that their run ended (one empty-ish object per node:
    ``node-<N>-<why>``), for the other nodes' guardians to see: a failure on one node ends the run on
    every node even when nobody watches from a notebook."""
    return f"runctl/{project}/fleet-ends/{run_id}/"


def fleet_ends(ctx: Context, project: str, run_id: str) -> dict[int, str]:
    """The nodes whose guardian said their run ended (node → why: ``exit-1``, ``spot-notice``,
    ``instance-gone``, …; not the nodes whose run ``succeeded``): who ended a fleet run first, whoever
    followed it. {} without a bucket or when S3 cannot be read."""
    from .aws import s3
    from .errors import BackendError

    bucket = s3.bucket_for(ctx, None, required=False)
    if bucket is None:
        return {}
    try:
        keys = s3.list_objects(ctx, bucket, fleet_ends_prefix(project, run_id))
    except BackendError:
        return {}
    ends = {}
    for key in keys:
        node, _, why = key.removeprefix("node-").partition("-")
        if key.startswith("node-") and node.isdigit() and why and why != "succeeded":
            ends[int(node)] = why
    return ends


# the states of a node's instance that end the run on it (it cannot come back by itself)
ENDED_INSTANCE_STATES = ("shutting-down", "terminated", "stopping", "stopped")


def _fleet_watch_env(ctx: Context, node: int, instances: tuple[str, ...], project: str, run_id: str, bucket: str,
                     ttl: int) -> dict[str, str]:
    """A presigned POST for keys under the run's fleet-ends prefix (≤ 1 KiB each) and a presigned
    ListObjectsV2 of that prefix: every node posts its own end and lists the others'. And a presigned
    DescribeInstances of the other nodes' instances, filtered to the states that end a run: a node
    whose instance went without its guardian saying so (terminated in the console, reclaimed with no
    notice seen) is seen too."""
    from .aws import s3

    presigner = s3.presigner(ctx, bucket)
    prefix = fleet_ends_prefix(project, run_id)
    listing = presigner.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket, "Prefix": prefix},
                                               ExpiresIn=ttl)
    env = {"RUNCTL_GUARDIAN_FLEET_NODE": str(node), "RUNCTL_GUARDIAN_FLEET_PREFIX": prefix,
           "RUNCTL_G_FLEETPOST": _post_config(presigner, bucket, prefix, ttl, 1024), "RUNCTL_G_FLEETLIST": f"url = {_curl_quote(listing)}"}
    peers = [(i, iid) for i, iid in enumerate(instances) if i != node]
    if peers:
        described = ctx.client("ec2").generate_presigned_url(
            "describe_instances", ExpiresIn=ttl,
            Params={"InstanceIds": [iid for _, iid in peers],
                    "Filters": [{"Name": "instance-state-name", "Values": list(ENDED_INSTANCE_STATES)}]})
        env["RUNCTL_G_FLEETPEERS"] = f"url = {_curl_quote(described)}"
        env["RUNCTL_GUARDIAN_FLEET_PEERS"] = " ".join(f"{i}:{iid}" for i, iid in peers)
    env["RUNCTL_GUARDIAN_FLEET_POLL"] = SANDBOX_FLEET_POLL if ctx.is_sandbox else str(FLEET_POLL_S)
    return env


def before_launch(ctx: Context, instance_id: str, project: str, run_id: str, resume: str | None,
                  launch_env_: dict[str, str], echo: Echo,
                  request: Request | None = None) -> None:
    """``training.start_training``'s hook before round trip 2: guardian env/scripts, resume fetch."""
    from .aws import ec2, s3

    inst = ec2.describe(ctx, instance_id)
    if resume == "auto":
        _resume_auto(ctx, project, launch_env_, echo)
    p = plan(ctx, inst, request)
    if p is None:
        return
    bucket = s3.bucket_for(ctx, None, required=False)
    if bucket is None:  # nowhere to upload checkpoints to
        implied = request is None or not (request.autostop_s or request.max_hours or request.max_cost)
        if implied:  # only spot (or fleet peer) watching was implied: say so, train anyway
            echo("Guardian: not started (no S3 bucket configured for checkpoint copies: "
                 "`runctl config set bucket NAME`)")
            return
        raise UsageError("The guardian needs an S3 bucket for checkpoint copies.",
                         [cmd("config set bucket NAME", "Set one"), Step("Or pass --bucket NAME")])
    launch_env_.update(launch_env(ctx, inst, p, project, run_id, bucket))
    _PLANS[(instance_id, run_id)] = p
    if p.mode == "instance-role":
        echo(f"Guardian: uploads with the instance role ({inst.iam_instance_profile}); presigned URLs as "
             f"fallback until {p.urls_valid_until.isoformat(timespec='minutes')}")
    else:
        echo(f"Guardian: uploads with presigned URLs valid until {p.urls_valid_until.isoformat(timespec='minutes')}")
    extra = ""
    if p.max_cost:
        extra = f" (price ${p.price_per_hour:.4f}/h from {p.price_source})"
    said = [f"Guardian {p.watching()}{extra}"]
    if p.spot:
        said.append("on a spot notice it checkpoints and uploads every checkpoint, newest first")
    if p.autostop_s or p.max_seconds or p.max_cost:
        said.append(ending_text(p.end))
    if p.fleet_node is not None:
        said.append("when the run fails or is interrupted on another node, it stops this node's training "
                    "(SIGTERM: it saves a checkpoint) and uploads its newest checkpoint, even with no notebook watching")
    echo("; ".join(said))


def ending_text(end: str) -> str:
    """What the guardian does when a limit is reached (what ``guardian.sh`` does for ``end``)."""
    if end == "terminate":
        return ("when a limit is reached it checkpoints, uploads every checkpoint and terminates the instance "
                "(one-time spot: it cannot be stopped) only once all are in S3 and no other project's checkpoints "
                "are on its disk; otherwise it keeps it running and says why in the log and `aws status`")
    return "when a limit is reached it checkpoints, uploads the newest checkpoint and stops the instance"


def after_launch(ctx: Context, instance_id: str, run_id: str) -> None:
    """Write the runctl:guardian tag once the run started."""
    from .aws import ec2

    p = _PLANS.pop((instance_id, run_id), None)
    if p is not None:
        ec2.set_tags(ctx, instance_id, {GUARDIAN_TAG: p.watching()[:256]})


# --- resume ----------------------------------------------------------------------------------------

_NUM = re.compile(r"(\d+)")


def _natural(key: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in _NUM.split(key)]


def newest_checkpoint(ctx: Context, bucket: str, project: str) -> dict[str, Any] | None:
    """The newest object under ``runctl/<project>/checkpoints/`` by LastModified (ties: natural key order)."""
    from .errors import translate_aws_errors
    from .guard import checkpoint_prefix

    prefix = checkpoint_prefix(project)
    best = None
    paginator = ctx.client("s3").get_paginator("list_objects_v2")
    with translate_aws_errors(f"list s3://{bucket}/{prefix}"):
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rank = (obj["LastModified"], _natural(obj["Key"]))
                if best is None or rank > best[0]:
                    best = (rank, obj)
    return None if best is None else best[1]


def _resume_auto(ctx: Context, project: str, env: dict[str, str], echo: Echo) -> None:
    from .aws import s3
    from .guard import checkpoint_prefix

    bucket = s3.bucket_for(ctx, None, required=False)
    obj = newest_checkpoint(ctx, bucket, project) if bucket else None
    if obj is None or bucket is None:
        echo("Resume: no checkpoint of this project in S3; the script resumes from its own checkpoint dir, if any")
        return
    rest = obj["Key"][len(checkpoint_prefix(project)):]
    rel = rest.split("/", 1)[1] if "/" in rest else rest   # drop the run id
    env["RUNCTL_FETCH_URL"] = s3.presign_get(ctx, bucket, obj["Key"], FETCH_URL_SECONDS)
    env["RUNCTL_FETCH_NAME"] = rel
    # the instance keeps its own checkpoint when it is as new or newer (never-uploaded work)
    env["RUNCTL_FETCH_MTIME"] = str(int(obj["LastModified"].timestamp()))
    # the download is checked against the MD5 runctl stored with the copy (an ETag is no MD5 for multipart)
    md5 = s3.stored_md5s(ctx, bucket, [obj["Key"]]).get(obj["Key"])
    if md5:
        env["RUNCTL_FETCH_MD5"] = md5
    echo(f"Resume: fetching s3://{bucket}/{obj['Key']} onto the instance before the run starts")


# --- status ----------------------------------------------------------------------------------------

def refresh(ctx: Context, inst: Instance) -> GuardianRecord:
    """Read the newest guardian record on a running instance and update the runctl:guardian tag."""
    from .aws import ec2, ssm

    if inst.state != "running" or not inst.project:
        return GuardianRecord(found=False)
    args = [inst.project] + ([inst.tags[RUN_ID_TAG]] if inst.tags.get(RUN_ID_TAG) else [])
    result = ssm.run(ctx, inst.instance_id, "guardian_status", args, ssm.remote_root_env(ctx))
    record = GuardianRecord.parse(result.stdout)
    if not record.found:
        return record
    text = describe_record(record)
    ec2.set_tags(ctx, inst.instance_id, {GUARDIAN_TAG: text[:256]})
    inst.tags[GUARDIAN_TAG] = text[:256]
    return record


def describe_record(rec: GuardianRecord) -> str:
    """One line for the tag / status from a guardian record."""
    if rec.state == "watching" and rec.alive:
        text = f"watching: {rec.watching}" if rec.watching else "watching"
        return text + (f"; {rec.fleet_watch}" if rec.fleet_watch else "")
    if rec.state in ("acted", "acting"):
        if rec.upload_scope == "all":  # the disk goes: every checkpoint was to be uploaded
            if rec.upload_total:
                tail = f", {rec.uploaded} of {rec.upload_total} checkpoints uploaded"
            elif rec.upload == "none":
                tail = ", no checkpoint"
            else:
                tail = ", uploading checkpoints"
        elif rec.checkpoint:
            tail = f", {rec.checkpoint} {'uploaded' if rec.upload == 'ok' else 'NOT uploaded'}"
        else:
            tail = ", no checkpoint"
        what = f"{rec.action or '?'}" + (f" ({rec.peer} ended the run)" if rec.peer else "")
        text = f"{rec.state}: {what}{tail}" + (f" at {rec.at}" if rec.at else "")
        if rec.instance.startswith("kept running"):
            text += f"; instance {rec.instance}"
        return text
    return f"{rec.state or '?'}: {rec.action}".rstrip(": ")


def read_record_json(text: str) -> dict[str, Any]:
    return json.loads(text)
