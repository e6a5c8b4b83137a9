"""What "a verified copy" means on the sandbox's strict S3: the object carries the MD5 runctl signed
into its upload (never an ETag taken for one), files over S3's 5 GB single PUT go up in parts, and a
file that changes while it is uploaded leaves no copy that could pass for it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from runctl_jupyter import guard
from runctl_jupyter.aws import s3

BUCKET = "runctl-sandbox"
MiB = 1024 * 1024


def _checkpoints(sandbox, iid: str, project: str) -> Path:
    folder = Path(sandbox.directory) / "instances" / iid / "runctl" / project / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _listed(ctx, iid: str, project: str) -> list[guard.Checkpoint]:
    listing = guard.list_checkpoints(ctx, iid, project)
    assert listing.complete, listing.doubt
    return listing.checkpoints


def _upload(ctx, iid: str, project: str, checkpoints: list[guard.Checkpoint]) -> list[str]:
    said: list[str] = []
    guard.upload_checkpoints(ctx, iid, project, "run-1", checkpoints, s3.bucket_for(ctx), said.append)
    return said


def test_a_copy_without_runctls_checksum_is_not_trusted_and_is_sent_again(ctx, sandbox, instance):
    body = b"epoch 1 weights"
    (_checkpoints(sandbox, instance, "kappa") / "best.pt").write_bytes(body)
    (_checkpoints(sandbox, instance, "kappa") / "last.pt").write_bytes(b"epoch 2 weights")
    bucket = s3.bucket_for(ctx)
    client = ctx.client("s3")
    # a copy put there by hand: same bytes, so its ETag *is* their MD5, yet S3 holds no checksum of runctl's
    client.put_object(Bucket=bucket, Key="runctl/kappa/checkpoints/old/best.pt", Body=body)
    # a copy of the right size carrying another file's checksum
    client.put_object(Bucket=bucket, Key="runctl/kappa/checkpoints/old/last.pt", Body=b"epoch 0 weights",
                      Metadata={s3.MD5_METADATA: hashlib.md5(b"epoch 0 weights").hexdigest()})
    listed = _listed(ctx, instance, "kappa")
    guard.verify_copies(ctx, bucket, "kappa", listed)
    assert [ck.verified for ck in listed] == [False, False]
    assert _upload(ctx, instance, "kappa", listed) == []
    assert all(ck.verified and ck.s3_key.startswith("runctl/kappa/checkpoints/run-1/") for ck in listed)
    head = client.head_object(Bucket=bucket, Key="runctl/kappa/checkpoints/run-1/best.pt")
    assert head["Metadata"] == {s3.MD5_METADATA: hashlib.md5(body).hexdigest()}


def test_a_checkpoint_over_the_single_put_limit_goes_up_in_verified_parts(ctx, sandbox, instance, monkeypatch):
    # the limit scaled down (5 GB → 6 MiB, parts 512 MiB → 5 MiB, S3's smallest): the same code path
    monkeypatch.setattr(guard, "SINGLE_PUT_MAX_BYTES", 6 * MiB)
    monkeypatch.setattr(guard, "PART_BYTES", 5 * MiB)
    big = os.urandom(11 * MiB)
    (_checkpoints(sandbox, instance, "lambda") / "model.pt").write_bytes(big)
    (_checkpoints(sandbox, instance, "lambda") / "small.pt").write_bytes(b"s")
    listed = _listed(ctx, instance, "lambda")
    assert _upload(ctx, instance, "lambda", listed) == []
    assert all(ck.verified for ck in listed)
    client = ctx.client("s3")
    head = client.head_object(Bucket=BUCKET, Key="runctl/lambda/checkpoints/run-1/model.pt")
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB: an ETag that is no MD5
    assert head["Metadata"] == {s3.MD5_METADATA: hashlib.md5(big).hexdigest()}
    assert client.get_object(Bucket=BUCKET, Key="runctl/lambda/checkpoints/run-1/model.pt")["Body"].read() == big
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


@pytest.mark.parametrize("size_mib", [1, 11], ids=["single-put", "multipart"])
def test_a_file_rewritten_after_it_was_listed_leaves_no_copy_that_passes_for_it(ctx, sandbox, instance,
                                                                                monkeypatch, size_mib):
    monkeypatch.setattr(guard, "SINGLE_PUT_MAX_BYTES", 6 * MiB)
    monkeypatch.setattr(guard, "PART_BYTES", 5 * MiB)
    path = _checkpoints(sandbox, instance, "mu") / f"model_{size_mib}.pt"
    path.write_bytes(b"a" * size_mib * MiB)
    listed = [ck for ck in _listed(ctx, instance, "mu") if ck.relpath == path.name]
    path.write_bytes(b"b" * size_mib * MiB)  # the training saves again: same size, other bytes
    os.utime(path, (listed[0].mtime + 5, listed[0].mtime + 5))
    said = _upload(ctx, instance, "mu", listed)
    assert not listed[0].verified
    assert said and said[0].startswith(f"  upload failed: {path.name} ("), said
    if size_mib > 1:
        assert "changed since it was listed" in said[0] and "the multipart upload was aborted" in said[0]
    assert ctx.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert not any(key.endswith(path.name) for key in s3.list_objects(ctx, BUCKET, "runctl/mu/checkpoints/"))
