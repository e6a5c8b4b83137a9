"""S3 housekeeping: what runctl keeps under ``runctl/`` (objects, open multipart uploads), deleting
old code bundles, and the bucket's AbortIncompleteMultipartUpload lifecycle rule.

An interrupted multipart upload (``aws s3 cp`` cut off, a checkpoint upload that died) keeps its parts,
and they bill as storage, invisible in every object listing. A lifecycle rule scoped to ``runctl/``
makes S3 abort them a day after they began; ``storage prune`` aborts them too where the rule is not
allowed. The rule is merged into the bucket's existing ones (read first, never replaced) once per
process; AccessDenied is remembered, not raised.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from ..errors import RunctlError, translate_aws_errors
from .session import Context

PREFIX = "runctl/"
RULE_ID = "runctl-abort-incomplete-multipart-uploads"
ABORT_AFTER_DAYS = 1
_DENIED = {"AccessDenied", "AccessDeniedException", "AllAccessDisabled", "UnauthorizedOperation"}

# lifecycle state per (world, bucket): one Get (+ one Put) per process
_LIFECYCLE: dict[tuple[str, str], str] = {}
_LIFECYCLE_LOCK = threading.Lock()


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True)
class OpenUpload:
    key: str
    upload_id: str
    initiated: datetime
    size: int  # the bytes of the parts uploaded so far (ListParts)
    parts: int


def _code(exc: BaseException) -> str | None:
    return getattr(exc, "response", {}).get("Error", {}).get("Code")


# --- listing ---------------------------------------------------------------------------------------

def list_stored(ctx: Context, bucket: str, prefix: str = PREFIX) -> list[StoredObject]:
    """Every object under ``prefix`` (ListObjectsV2, paginated)."""
    found: list[StoredObject] = []
    with translate_aws_errors(f"list s3://{bucket}/{prefix}"):
        for page in ctx.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.extend(StoredObject(o["Key"], int(o["Size"]), o["LastModified"]) for o in page.get("Contents", []))
    return found


def list_open_uploads(ctx: Context, bucket: str, prefix: str = PREFIX) -> list[OpenUpload]:
    """Multipart uploads begun under ``prefix`` and never completed or aborted, with the size of
    their parts (ListMultipartUploads + ListParts, both paginated)."""
    client = ctx.client("s3")
    uploads: list[OpenUpload] = []
    with translate_aws_errors(f"list the open multipart uploads in s3://{bucket}/{prefix}"):
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
            for up in page.get("Uploads", []):
                size = parts = 0
                try:
                    for ppage in client.get_paginator("list_parts").paginate(
                            Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"]):
                        for part in ppage.get("Parts", []):
                            size += int(part.get("Size", 0))
                            parts += 1
                except Exception as exc:
                    if _code(exc) != "NoSuchUpload":  # completed or aborted meanwhile
                        raise
                    continue
                uploads.append(OpenUpload(up["Key"], up["UploadId"], up["Initiated"], size, parts))
    return uploads


# --- deleting --------------------------------------------------------------------------------------

def delete_keys(ctx: Context, bucket: str, keys: list[str]) -> None:
    """DeleteObject per key (IAM s3:DeleteObject on the key itself; prunes delete a handful)."""
    client = ctx.client("s3")
    for key in keys:
        with translate_aws_errors(f"delete s3://{bucket}/{key}"):
            client.delete_object(Bucket=bucket, Key=key)


def abort_uploads(ctx: Context, bucket: str, uploads: list[OpenUpload]) -> None:
    client = ctx.client("s3")
    for up in uploads:
        with translate_aws_errors(f"abort the multipart upload to s3://{bucket}/{up.key}"):
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=up.key, UploadId=up.upload_id)
            except Exception as exc:
                if _code(exc) != "NoSuchUpload":  # gone already: what prune wanted
                    raise


# --- the lifecycle rule ----------------------------------------------------------------------------

def _covers(rule: dict) -> bool:
    """An enabled rule that already aborts incomplete uploads under runctl/ within a day."""
    if rule.get("Status") != "Enabled":
        return False
    days = rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
    if days is None or int(days) > ABORT_AFTER_DAYS:
        return False
    filt = rule.get("Filter")
    if filt is None:
        prefix = rule.get("Prefix", "")
    elif set(filt) <= {"Prefix"}:
        prefix = filt.get("Prefix", "")
    else:
        return False  # tag / size / And filters: not every upload
    return PREFIX.startswith(prefix)


def _rule() -> dict:
    return {"ID": RULE_ID, "Status": "Enabled", "Filter": {"Prefix": PREFIX},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_AFTER_DAYS}}


def ensure_lifecycle(ctx: Context, bucket: str) -> str:
    """Make sure the bucket aborts runctl's incomplete multipart uploads after a day; the outcome
    as ``storage`` shows it. Once per process and bucket; AccessDenied is an outcome, not an error."""
    key = (ctx.world_key, bucket)
    with _LIFECYCLE_LOCK:
        if key not in _LIFECYCLE:
            try:
                _LIFECYCLE[key] = _apply_rule(ctx, bucket)
            except RunctlError as err:  # housekeeping never fails a command: tried again next time
                cause = err.__cause__
                return f"not checked ({_code(cause) or type(cause).__name__})" if cause else "not checked"
        return _LIFECYCLE[key]


def lifecycle_state(ctx: Context, bucket: str) -> str | None:
    return _LIFECYCLE.get((ctx.world_key, bucket))


def forget_lifecycle() -> None:
    """Forget what this process learnt (tests; a policy that changed)."""
    with _LIFECYCLE_LOCK:
        _LIFECYCLE.clear()


def _apply_rule(ctx: Context, bucket: str) -> str:
    client = ctx.client("s3")
    with translate_aws_errors(f"read the lifecycle rules of s3://{bucket}"):
        try:
            current = client.get_bucket_lifecycle_configuration(Bucket=bucket)
        except Exception as exc:
            code = _code(exc)
            if code in _DENIED:
                return "not allowed (add s3:GetLifecycleConfiguration)"
            if code != "NoSuchLifecycleConfiguration":
                raise
            current = {}
    rules = list(current.get("Rules", []))
    ours = next((r for r in rules if r.get("ID") == RULE_ID), None)
    if ours is not None and ours.get("Status") != "Enabled":
        return "disabled in the bucket (left as it is)"
    covering = next((r for r in rules if _covers(r)), None)
    if covering is not None:
        return "set" if covering is ours else f"covered by the bucket's rule {covering.get('ID') or '(unnamed)'}"
    extra = {}
    if current.get("TransitionDefaultMinimumObjectSize"):  # kept as the bucket had it
        extra["TransitionDefaultMinimumObjectSize"] = current["TransitionDefaultMinimumObjectSize"]
    with translate_aws_errors(f"add a lifecycle rule to s3://{bucket}"):
        try:
            client.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": [*rules, _rule()]}, **extra)
        except Exception as exc:
            if _code(exc) in _DENIED:
                return "not allowed (add s3:PutLifecycleConfiguration)"
            raise
    return "set"
