"""S3: the bucket for code bundles and checkpoint copies, presigned URLs for instances.

Instances need no AWS CLI and no S3 permission: the notebook side hands them presigned GET URLs
(code bundle) and PUT URLs (checkpoints). URLs are secrets: never print or log them.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, overload

from botocore.exceptions import ClientError

from ..errors import BackendError, Step, UsageError, cmd, translate_aws_errors
from .session import Context

SANDBOX_BUCKET = "runctl-sandbox"
URL_TTL_S = 3600


MD5_METADATA = "runctl-md5"  # the whole file's MD5 (hex), stored by runctl with every checkpoint copy
HEAD_WORKERS = 16


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str  # quotes stripped: not an MD5 for multipart or SSE-KMS objects, so never trusted as one


@overload
def bucket_for(ctx: Context, explicit: str | None = None, *, required: Literal[True] = True) -> str: ...
@overload
def bucket_for(ctx: Context, explicit: str | None = None, *, required: bool) -> str | None: ...
def bucket_for(ctx: Context, explicit: str | None = None, *, required: bool = True) -> str | None:
    """The configured bucket; in the sandbox a default one is created on first use. On first use in a
    process the bucket gets runctl's AbortIncompleteMultipartUpload rule (:mod:`.s3_storage`)."""
    bucket = explicit or ctx.settings.bucket
    if bucket:
        _validate_bucket(bucket)
        from .s3_storage import ensure_lifecycle

        ensure_lifecycle(ctx, bucket)
        return bucket
    if ctx.is_sandbox:
        ensure_bucket(ctx, SANDBOX_BUCKET)
        return SANDBOX_BUCKET
    if not required:
        return None
    raise UsageError(
        "No S3 bucket is configured for code bundles and checkpoint copies.",
        [cmd("config set bucket my-training-bucket", "Set one (it must exist and be yours)"),
         Step("Or pass --bucket NAME, or use --no-sync-code")],
    )


def _validate_bucket(bucket: str) -> None:
    ok = 3 <= len(bucket) <= 63 and all(c.islower() or c.isdigit() or c in ".-" for c in bucket) \
        and bucket[0].isalnum() and bucket[-1].isalnum()
    if not ok:
        raise UsageError(f"'{bucket}' is not a valid S3 bucket name.",
                         [Step("Use 3-63 lowercase letters, digits, dots or hyphens"),
                          cmd("config set bucket NAME", "Then set it")])


def ensure_bucket(ctx: Context, bucket: str) -> None:
    client = ctx.client("s3")
    with translate_aws_errors(f"create bucket {bucket}"):
        try:
            client.head_bucket(Bucket=bucket)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise
            kwargs = {} if ctx.region == "us-east-1" else {
                "CreateBucketConfiguration": {"LocationConstraint": ctx.region}}
            client.create_bucket(Bucket=bucket, **kwargs)
    from .s3_storage import ensure_lifecycle

    ensure_lifecycle(ctx, bucket)


def put_bytes(ctx: Context, bucket: str, key: str, data: bytes) -> None:
    with translate_aws_errors(f"upload s3://{bucket}/{key}"):
        ctx.client("s3").put_object(Bucket=bucket, Key=key, Body=data)


_BUCKET_REGIONS: dict[tuple[str, str], str] = {}


def bucket_region(ctx: Context, bucket: str) -> str:
    """The region a bucket lives in (GetBucketLocation, cached per world and bucket)."""
    world = ctx.world_key
    if (world, bucket) not in _BUCKET_REGIONS:
        with translate_aws_errors(f"find the region of s3://{bucket}"):
            location = ctx.client("s3").get_bucket_location(Bucket=bucket).get("LocationConstraint")
        # no constraint is us-east-1; "EU" is what old eu-west-1 buckets say
        _BUCKET_REGIONS[(world, bucket)] = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(
            location, location)
    return _BUCKET_REGIONS[(world, bucket)]


def presigner(ctx: Context, bucket: str):
    """The client that signs URLs for ``bucket``: SigV4, its own region's endpoint."""
    return ctx.client("s3", bucket_region(ctx, bucket), presign=True)


def presign_get(ctx: Context, bucket: str, key: str, ttl_s: int = URL_TTL_S) -> str:
    return presigner(ctx, bucket).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_s)


def presign_put(ctx: Context, bucket: str, key: str, md5_hex: str, ttl_s: int = URL_TTL_S) -> str:
    """A PUT URL that signs the body's MD5 twice: ``Content-MD5`` (S3 refuses another body: BadDigest)
    and ``x-amz-meta-runctl-md5`` (stored with the object, what ``stored_md5s`` verifies later). The
    uploader must send both headers (``md5_headers``)."""
    return presigner(ctx, bucket).generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key, "ContentMD5": content_md5(md5_hex),
                              "Metadata": {MD5_METADATA: md5_hex}}, ExpiresIn=ttl_s)


def content_md5(md5_hex: str) -> str:
    return base64.b64encode(bytes.fromhex(md5_hex)).decode()


def start_multipart(ctx: Context, bucket: str, key: str, md5_hex: str) -> str:
    """A multipart upload (for files over S3's 5 GB single PUT) whose object will carry the whole file's MD5."""
    with translate_aws_errors(f"start a multipart upload to s3://{bucket}/{key}"):
        return ctx.client("s3").create_multipart_upload(
            Bucket=bucket, Key=key, Metadata={MD5_METADATA: md5_hex})["UploadId"]


def presign_part(ctx: Context, bucket: str, key: str, upload_id: str, part: int, ttl_s: int = URL_TTL_S) -> str:
    return presigner(ctx, bucket).generate_presigned_url(
        "upload_part", Params={"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": part},
        ExpiresIn=ttl_s)


def finish_multipart(ctx: Context, bucket: str, key: str, upload_id: str, etags: dict[int, str] | None) -> None:
    """Complete with the parts' ETags, or (``None``: a part failed) abort, so no part keeps billing."""
    client = ctx.client("s3")
    with translate_aws_errors(f"finish the multipart upload to s3://{bucket}/{key}"):
        if etags is None:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            return
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]})


def stored_md5s(ctx: Context, bucket: str, keys: list[str]) -> dict[str, str | None]:
    """The MD5 runctl stored with each object (HeadObject, in parallel); ``None`` where there is none."""
    client = ctx.client("s3")

    def head(key: str) -> str | None:
        try:
            return client.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(MD5_METADATA)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    if not keys:
        return {}
    with translate_aws_errors(f"read checksums in s3://{bucket}"), \
            ThreadPoolExecutor(max_workers=min(HEAD_WORKERS, len(keys))) as pool:
        return dict(zip(keys, pool.map(head, keys), strict=True))


def list_objects(ctx: Context, bucket: str, prefix: str) -> dict[str, S3Object]:
    """Objects under ``prefix`` keyed by the rest of their key (paginated)."""
    found: dict[str, S3Object] = {}
    paginator = ctx.client("s3").get_paginator("list_objects_v2")
    with translate_aws_errors(f"list s3://{bucket}/{prefix}"):
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(prefix):]
                    found[rel] = S3Object(obj["Key"], obj["Size"], obj["ETag"].strip('"'))
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "NoSuchBucket":
                raise BackendError(f"S3 bucket '{bucket}' does not exist.",
                                   [Step("Create it in the AWS console or with `aws s3 mb`"),
                                    cmd("config set bucket NAME", "Or point runctl at another bucket")]) from exc
            raise
    return found


def get_bytes(ctx: Context, bucket: str, key: str) -> bytes:
    with translate_aws_errors(f"download s3://{bucket}/{key}"):
        return ctx.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
