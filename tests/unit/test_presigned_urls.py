"""Presigned URLs are SigV4 and name the bucket's own region: botocore's default presigns SigV2 on the
global endpoint for us-east-1, us-west-2 and eu-west-1, which S3 refuses for buckets made since June
2020 (and curl on the instance follows no redirect). No network: GetBucketLocation is stubbed."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.stub import Stubber

from runctl_jupyter import api
from runctl_jupyter.aws import s3


@pytest.fixture
def aws_ctx(monkeypatch: pytest.MonkeyPatch, tmp_path):
    from runctl_jupyter.aws.session import SANDBOX_ENV

    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "RUNCTL_SANDBOX_DIR", SANDBOX_ENV):
        monkeypatch.delenv(var, raising=False)  # a real-account context (nothing is sent: stubbed, presigned)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setattr(s3, "_BUCKET_REGIONS", {})
    ctx = api.context()
    assert not ctx.is_sandbox
    return ctx


@pytest.mark.parametrize("location, region", [(None, "us-east-1"), ("us-west-2", "us-west-2"),
                                              ("EU", "eu-west-1"), ("eu-west-1", "eu-west-1"),
                                              ("ap-south-1", "ap-south-1")])
def test_urls_are_sigv4_for_the_buckets_own_region(aws_ctx, location: str | None, region: str) -> None:
    with Stubber(aws_ctx.client("s3")) as stub:
        stub.add_response("get_bucket_location", {"LocationConstraint": location} if location else {},
                          {"Bucket": "my-bucket"})
        for url in (s3.presign_put(aws_ctx, "my-bucket", "runctl/p/checkpoints/r/c.pt", "0" * 32),
                    s3.presign_get(aws_ctx, "my-bucket", "runctl/p/code/bundle.tar.gz")):
            parts = urlsplit(url)
            query = parse_qs(parts.query)
            assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and "Signature" not in query
            assert f"/{region}/s3/aws4_request" in query["X-Amz-Credential"][0]
            assert parts.netloc == f"my-bucket.s3.{region}.amazonaws.com"
        # the bucket's region is asked once per world and bucket
        s3.presign_get(aws_ctx, "my-bucket", "again")
