"""S3 rules moto does not enforce, answered as S3 answers them (DESIGN.md: as strict as AWS).

- A single PUT (PutObject, UploadPart) holds at most 5 GB: larger → 400 ``EntityTooLarge``, judged
  from ``Content-Length`` before a byte of the body is read (tests claim the size, they send nothing).
- ``Content-MD5`` is checked against the body: not base64 of 16 bytes → 400 ``InvalidDigest``, another
  body → 400 ``BadDigest`` (moto stores whatever arrives).
- A presigned URL signs a set of headers (``X-Amz-SignedHeaders``): a signed header the request
  lacks → 403 ``SignatureDoesNotMatch``; an ``x-amz-*`` header that was not signed → 403
  ``AccessDenied`` ("There were headers present in the request which were not signed").
- A presigned URL signed for another region than its bucket's → 400
  ``AuthorizationQueryParametersError`` (``curl`` follows no redirect; the SDK's own calls are left
  alone: on AWS botocore redirects them to the bucket's region).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from .protocol import drain, s3_error

MAX_SINGLE_PUT_BYTES = 5 * 1024 ** 3
# headers a client sends that S3 never asks to be signed on a presigned URL
_UNSIGNED_OK = {"x-amz-content-sha256"}


def _header(environ: dict[str, Any], name: str) -> str | None:
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return environ.get(key) or None
    return environ.get(f"HTTP_{key}")


def _request_headers(environ: dict[str, Any]) -> set[str]:
    names = {k[5:].lower().replace("_", "-") for k in environ if k.startswith("HTTP_")}
    return names | {k.lower().replace("_", "-") for k in ("CONTENT_TYPE", "CONTENT_LENGTH") if environ.get(k)}


def check(environ: dict[str, Any], bucket_region: Callable[[str], str | None] = lambda _b: None) -> Any | None:
    """The refusal S3 would answer to this request, or ``None`` when S3 would take it.
    ``bucket_region(name)`` is the region of an existing bucket (``None``: no such bucket)."""
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if "X-Amz-Signature" in query:
        refusal = _presigned_headers(environ, query) or _presigned_region(environ, query, bucket_region)
        if refusal is not None:
            drain(environ)
            return refusal
    if environ.get("REQUEST_METHOD") != "PUT" or "HTTP_X_AMZ_COPY_SOURCE" in environ:
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > MAX_SINGLE_PUT_BYTES:  # answered before the body is read, as S3 does
        return s3_error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400)
    md5 = _header(environ, "content-md5")
    if md5 is None or environ.get("HTTP_CONTENT_ENCODING", "").startswith("aws-chunked"):
        return None
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        expected = base64.b64decode(md5, validate=True)
    except (binascii.Error, ValueError):
        expected = b""
    if len(expected) != 16:
        return s3_error("InvalidDigest", "The Content-MD5 you specified was invalid.", 400)
    if hashlib.md5(body).digest() != expected:
        return s3_error("BadDigest", "The Content-MD5 you specified did not match what we received.", 400)
    return None


def _presigned_headers(environ: dict[str, Any], query: dict[str, list[str]]) -> Any | None:
    signed = {h.strip().lower() for h in query.get("X-Amz-SignedHeaders", [""])[0].split(";") if h.strip()}
    present = _request_headers(environ)
    missing = sorted(signed - present - {"host"})
    if missing:
        return s3_error("SignatureDoesNotMatch", "The request signature we calculated does not match the "
                        f"signature you provided. Check your key and signing method. (unsent: {', '.join(missing)})",
                        403)
    unsigned = sorted(h for h in present - signed if h.startswith("x-amz-") and h not in _UNSIGNED_OK)
    if unsigned:
        return s3_error("AccessDenied", "There were headers present in the request which were not signed "
                        f"({', '.join(unsigned)})", 403)
    return None


def _presigned_region(environ: dict[str, Any], query: dict[str, list[str]],
                      bucket_region: Callable[[str], str | None]) -> Any | None:
    parts = query.get("X-Amz-Credential", [""])[0].split("/")
    bucket = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]  # path style, as in the sandbox
    if len(parts) < 5 or not bucket or "location" in query:
        return None
    signed_for, actual = parts[-3], bucket_region(bucket)
    if actual is None or signed_for == actual:
        return None
    return s3_error("AuthorizationQueryParametersError", "Error parsing the X-Amz-Credential parameter; the "
                    f"region '{signed_for}' is wrong; expecting '{actual}'", 400)

