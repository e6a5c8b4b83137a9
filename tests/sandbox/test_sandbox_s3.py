"""S3 in the sandbox is as strict as S3: SigV2 (refused for every bucket made since June 2020) fails; a
single PUT over 5 GB, a body that is not its Content-MD5, a presigned URL sent without its signed
headers or with unsigned x-amz-* ones are refused as S3 refuses them."""

from __future__ import annotations

import base64
import hashlib
import http.client
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from sandbox_helpers import Sandbox

pytestmark = pytest.mark.sandbox


def _presigned(sb: Sandbox, signature_version: str) -> str:
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=sb.info.endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(signature_version=signature_version, s3={"addressing_style": "path"}))
    return client.generate_presigned_url("get_object", Params={"Bucket": "strict", "Key": "k"}, ExpiresIn=300)


def test_a_sigv2_presigned_url_is_refused_and_sigv4_works(sb: Sandbox) -> None:
    s3 = sb.client("s3")
    s3.create_bucket(Bucket="strict")
    s3.put_object(Bucket="strict", Key="k", Body=b"payload")
    sigv2 = _presigned(sb, "s3")
    assert "Signature=" in sigv2 and "X-Amz-Algorithm" not in sigv2
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(sigv2, timeout=10)
    assert err.value.code == 400
    body = err.value.read().decode()
    assert "<Code>InvalidRequest</Code>" in body and "Please use AWS4-HMAC-SHA256" in body
    with urllib.request.urlopen(_presigned(sb, "s3v4"), timeout=10) as resp:
        assert resp.read() == b"payload"


def _raw_put(sb: Sandbox, path_and_query: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, str]:
    """One PUT as curl would send it (no SDK in between), the status and S3's error code."""
    parts = urlsplit(sb.info.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("PUT", path_and_query)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        text = resp.read().decode()
    finally:
        conn.close()
    code = text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else ""
    return resp.status, code


def _presigned_put(sb: Sandbox, key: str, **params: object) -> str:
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=sb.info.endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    url = client.generate_presigned_url("put_object", Params={"Bucket": "strict", "Key": key, **params},
                                        ExpiresIn=300)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_a_single_put_over_5_gb_is_refused_before_its_body_is_read(sb: Sandbox) -> None:
    sb.client("s3").create_bucket(Bucket="strict")
    target = _presigned_put(sb, "huge.pt")
    # the size is claimed, not sent: S3 answers from Content-Length
    assert _raw_put(sb, target, {"Content-Length": str(5 * 1024 ** 3 + 1)}) == (400, "EntityTooLarge")
    assert _raw_put(sb, target, {"Content-Length": "7"}, b"weights") == (200, "")


def test_content_md5_is_checked_against_the_body(sb: Sandbox) -> None:
    sb.client("s3").create_bucket(Bucket="strict")
    body = b"trained weights"
    good = base64.b64encode(hashlib.md5(body).digest()).decode()
    other = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    for md5, expected in ((other, (400, "BadDigest")), ("bm90LW1kNQ==", (400, "InvalidDigest")), (good, (200, ""))):
        headers = {"Content-Length": str(len(body)), "Content-MD5": md5}
        assert _raw_put(sb, _presigned_put(sb, "w.pt", ContentMD5=md5), headers, body) == expected, md5
    assert sb.client("s3").get_object(Bucket="strict", Key="w.pt")["Body"].read() == body


def test_a_presigned_url_needs_its_signed_headers_and_refuses_unsigned_amz_headers(sb: Sandbox) -> None:
    sb.client("s3").create_bucket(Bucket="strict")
    body = b"w"
    signed = _presigned_put(sb, "m.pt", Metadata={"runctl-md5": hashlib.md5(body).hexdigest()})
    assert "x-amz-meta-runctl-md5" in signed
    assert _raw_put(sb, signed, {"Content-Length": "1"}, body) == (403, "SignatureDoesNotMatch")
    unsigned = _presigned_put(sb, "n.pt")
    assert _raw_put(sb, unsigned, {"Content-Length": "1", "x-amz-meta-runctl-md5": "0" * 32}, body) \
        == (403, "AccessDenied")
    ok = {"Content-Length": "1", "x-amz-meta-runctl-md5": hashlib.md5(body).hexdigest()}
    assert _raw_put(sb, signed, ok, body) == (200, "")
    head = sb.client("s3").head_object(Bucket="strict", Key="m.pt")
    assert head["Metadata"] == {"runctl-md5": hashlib.md5(body).hexdigest()}


def test_a_presigned_url_signed_for_another_region_than_its_buckets_is_refused(sb: Sandbox) -> None:
    """curl follows no redirect: a URL must be signed for the bucket's own region the first time."""
    sb.client("s3", "eu-west-1").create_bucket(Bucket="strict-eu",
                                               CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    sb.client("s3", "eu-west-1").put_object(Bucket="strict-eu", Key="k", Body=b"eu")

    def url(region: str) -> str:
        client = boto3.client("s3", region_name=region, endpoint_url=sb.info.endpoint, aws_access_key_id="testing",
                              aws_secret_access_key="testing",
                              config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        return client.generate_presigned_url("get_object", Params={"Bucket": "strict-eu", "Key": "k"}, ExpiresIn=300)

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url("us-east-1"), timeout=10)
    assert err.value.code == 400
    body = err.value.read().decode()
    assert "<Code>AuthorizationQueryParametersError</Code>" in body and "expecting 'eu-west-1'" in body
    with urllib.request.urlopen(url("eu-west-1"), timeout=10) as resp:
        assert resp.read() == b"eu"
