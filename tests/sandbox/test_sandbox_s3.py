"""S3 in the sandbox is as strict as S3: SigV2 (refused for every bucket made since June 2020) fails."""

from __future__ import annotations

import urllib.error
import urllib.request

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
