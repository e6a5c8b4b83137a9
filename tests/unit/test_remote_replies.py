"""What the on-instance scripts print, read into their reply dataclasses: every field typed, a
malformed or partial reply never read as a success (the upload and manifest paths decide what
may be deleted or skipped from these)."""

from __future__ import annotations

from runctl_jupyter.remote.replies import FailedUpload, ManifestPage, UploadedPart, UploadReply

UPLOAD = ("@runctl uploaded=a%20b.pt size=10 md5=0cc175b9c0f1b6a831c399e269772661\n"
          "@runctl part=big.pt n=1 etag=%22e1%22\n"
          "@runctl part=big.pt n=2 etag=%22e2%22\n"
          "@runctl failed=big.pt reason=curl%20exit%2022 n=3\n"
          "@runctl failed=c.pt reason=S3%20said%20403\n"
          "@runctl upload_ok=3 upload_failed=2\n")


def test_an_upload_reply_gives_parts_with_etags_and_failures_with_reasons():
    reply = UploadReply.parse(UPLOAD)
    assert reply.parts == (UploadedPart("big.pt", 1, '"e1"'), UploadedPart("big.pt", 2, '"e2"'))
    assert reply.failed == (FailedUpload("big.pt", "curl exit 22", 3), FailedUpload("c.pt", "S3 said 403"))
    assert reply.finished


def test_an_upload_cut_short_is_not_finished_and_a_part_without_an_etag_is_not_a_part():
    reply = UploadReply.parse("@runctl part=big.pt n=1 etag=\n@runctl part=big.pt n=x etag=%22e%22\n")
    assert reply == UploadReply(parts=(), failed=(), finished=False)


def test_manifest_pages():
    assert ManifestPage.parse("@runctl manifest=0 match=0\n") == ManifestPage(exists=False)
    current = ManifestPage.parse("@runctl manifest=1 match=1 manifest_sha256=" + "a" * 64 + "\n")
    assert (current.exists, current.match, current.sha256) == (True, True, "a" * 64)
    first = ManifestPage.parse("@runctl drifted=train.py\n@runctl drifted=data%2Fx%20y.csv gone=1\n"
                               "@runctl drift_total=5\n"
                               "@runctl manifest=1 match=0 manifest_sha256=" + "b" * 64 + " files=3 size=10\n")
    assert first.drifted == ("train.py", "data/x y.csv") and first.gone == frozenset({"data/x y.csv"})
    assert (first.drift_total, first.match) == (5, False)  # 5 drifted, 2 listed: the caller sends all again
