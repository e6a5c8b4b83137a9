"""`storage` and `storage prune` on the sandbox: what runctl keeps in S3, what it costs, and pruning
old code bundles and stale multipart uploads (issue 14 item 9). The lifecycle rule runctl sets."""

from __future__ import annotations

import re

import pytest
from itest_helpers import run_cli
from sandbox_env import fresh_instance, make_project

from runctl_jupyter import api, display, training
from runctl_jupyter.aws import s3, s3_storage
from runctl_jupyter.aws.s3 import SANDBOX_BUCKET
from runctl_jupyter.sandbox import control

PROJECT = "storagecheck"
GIB = 1024 ** 3


def _bundles(ctx) -> dict[str, int]:
    return {o.key: o.size for o in s3.list_objects(ctx, SANDBOX_BUCKET, f"runctl/{PROJECT}/code/").values()}


def _objects(ctx, prefix: str) -> dict[str, tuple[int, str]]:
    return {o.key: (o.size, o.etag) for o in s3.list_objects(ctx, SANDBOX_BUCKET, prefix).values()}


def test_the_lifecycle_rule_exists_after_first_bucket_use(ctx):
    s3.bucket_for(ctx)
    rules = ctx.client("s3").get_bucket_lifecycle_configuration(Bucket=SANDBOX_BUCKET)["Rules"]
    (ours,) = [r for r in rules if r["ID"] == s3_storage.RULE_ID]
    assert ours["Status"] == "Enabled" and ours["Filter"] == {"Prefix": "runctl/"}
    assert ours["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_the_rule_merges_with_a_bucket_s_own_rules_with_one_call_per_process(ctx):
    bucket = "storage-merge-check"
    client = ctx.client("s3")
    client.create_bucket(Bucket=bucket)
    own = {"ID": "expire-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [own]})
    assert s3.bucket_for(ctx, bucket) == bucket
    assert s3.bucket_for(ctx, bucket) == bucket
    assert ctx.calls["s3.GetBucketLifecycleConfiguration"] == 1  # remembered for the process
    assert ctx.calls["s3.PutBucketLifecycleConfiguration"] == 2  # the test's own rule, then runctl's
    rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(rules) == {"expire-logs", s3_storage.RULE_ID}
    assert rules["expire-logs"]["Expiration"] == {"Days": 30} and rules["expire-logs"]["Filter"] == {"Prefix": "logs/"}
    assert rules[s3_storage.RULE_ID]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_storage_lists_prunes_old_bundles_and_aborts_stale_uploads(ctx, shell, tmp_path):
    script = make_project(tmp_path / PROJECT, PROJECT)
    bundles: list[str] = []
    info = control.status()
    with fresh_instance(ctx, PROJECT) as iid:
        for version in ("1", "2"):  # two trains with different code: two bundles
            (tmp_path / PROJECT / "version.txt").write_text(version)
            launch = training.start_training(ctx, iid, script, ["--epochs", "1", "--sleep", "0"], project=PROJECT)
            assert training.follow_run(ctx, launch, lambda _t: None).exit_code == 0
            bundles += [k for k in _bundles(ctx) if k not in bundles]
        api.stop(ctx, iid, wait=True)  # uploads the checkpoint copies
    assert len(bundles) == 2
    older, newer = bundles
    checkpoints = _objects(ctx, f"runctl/{PROJECT}/checkpoints/")
    assert checkpoints
    # an interrupted upload: its part bills, though no object listing shows it
    client = ctx.client("s3")
    stale_key = f"runctl/{PROJECT}/checkpoints/run-x/big.pt"
    upload_id = client.create_multipart_upload(Bucket=SANDBOX_BUCKET, Key=stale_key)["UploadId"]
    client.upload_part(Bucket=SANDBOX_BUCKET, Key=stale_key, UploadId=upload_id, PartNumber=1, Body=b"x" * 4096)

    # storage (shell): bundles, checkpoint bytes and $/month per project
    shown = run_cli("--sandbox", "storage", "--project", PROJECT)
    assert shown.returncode == 0, shown.stderr
    df = shell.run_line_magic("runctl", f"storage --project {PROJECT}")
    code = df[df["kind"] == "code bundles"].iloc[0]
    assert (code["project"], code["objects"], code["bytes"]) == (PROJECT, 2, sum(_bundles(ctx).values()))
    assert code["usd_per_month"] == pytest.approx(code["bytes"] / GIB * 0.023)
    ck = df[df["kind"] == "checkpoints"]
    assert ck["bytes"].sum() == sum(size for size, _ in checkpoints.values()) > 0
    mp = df[df["kind"] == "multipart uploads"].iloc[0]
    assert (mp["objects"], mp["bytes"]) == (1, 4096)
    out = shown.stdout
    assert re.search(rf"^\s*{PROJECT}\s+code bundles\s+2\s+{code['bytes']}\s+[\d.]+ KiB\s+<\$0\.01\s", out, re.M), out
    for run_id, size in ck.set_index("run_id")["bytes"].items():
        assert re.search(rf"^\s*{PROJECT}\s+checkpoints\s+{run_id}\s+\d+\s+{size}\s", out, re.M), out
    assert re.search(rf"^\s*{PROJECT}\s+multipart uploads\s+1\s+4096\s+4\.0 KiB\s+<\$0\.01\s", out, re.M), out
    for line in ("1 open multipart upload(s)", "<$0.01/month (S3 Standard $0.023/GB-month in us-east-1",
                 f"[sandbox · us-east-1] s3://{SANDBOX_BUCKET}/runctl/{PROJECT}/ · lifecycle rule (abort incomplete "
                 "multipart uploads after 1 day): set", f"runctl storage prune --project {PROJECT}"):
        assert line in out, out
    assert "lifecycle rule (abort incomplete multipart uploads after 1 day): set" in display._html(df)

    try:
        # young bundles and a fresh upload are kept even with --keep 1
        young = run_cli("--sandbox", "storage", "prune", "--project", PROJECT, "--keep", "1", "--yes")
        assert young.returncode == 0, young.stderr
        assert "Nothing to prune" in young.stdout and "1 bundle(s) under an hour old" in young.stdout
        assert len(_bundles(ctx)) == 2

        api.sandbox_clock(advance=2 * 86400)  # two days later: the bundle and the upload are old
        before = _objects(ctx, "runctl/")
        dry = run_cli("--sandbox", "storage", "prune", "--project", PROJECT, "--keep", "1")
        assert dry.returncode == 0, dry.stderr
        assert _objects(ctx, "runctl/") == before  # a dry run deletes nothing
        assert client.list_multipart_uploads(Bucket=SANDBOX_BUCKET, Prefix=stale_key)["Uploads"]
        assert re.search(rf"^\s*would delete\s+{PROJECT}\s+code bundle\s+{older}\s+\d+ .*2d 0h\s+<\$0\.01$",
                         dry.stdout, re.M), dry.stdout
        assert newer not in dry.stdout
        assert re.search(rf"^\s*would abort\s+{PROJECT}\s+multipart upload\s+{stale_key}\s+4096 ", dry.stdout, re.M)
        assert ("Dry run: nothing was deleted. Pruning would remove 1 old code bundle(s) and 1 stale multipart "
                "upload(s), saving") in dry.stdout
        assert f"To do it: runctl storage prune --project {PROJECT} --keep 1 --yes" in dry.stdout
        nb = shell.run_line_magic("runctl", f"storage prune --project {PROJECT} --keep 1")  # a notebook dry run
        assert list(nb["action"]) == ["would delete", "would abort"] and _objects(ctx, "runctl/") == before
        assert "To do it: %runctl storage prune" in display._html(nb)

        done = run_cli("--sandbox", "storage", "prune", "--project", PROJECT, "--keep", "1", "--yes")
        assert done.returncode == 0, done.stderr
        assert (f"[sandbox · us-east-1] Deleted 1 old code bundle(s) and 1 stale multipart upload(s) from "
                f"s3://{SANDBOX_BUCKET}/: saved") in done.stderr
        assert list(_bundles(ctx)) == [newer]  # the older bundle only
        assert _objects(ctx, f"runctl/{PROJECT}/checkpoints/") == checkpoints  # checkpoint copies untouched
        assert client.list_multipart_uploads(Bucket=SANDBOX_BUCKET, Prefix=stale_key).get("Uploads", []) == []
        after = shell.run_line_magic("runctl", f"storage --project {PROJECT}")
        assert "multipart uploads" not in set(after["kind"])
        assert after[after["kind"] == "code bundles"].iloc[0]["objects"] == 1
    finally:
        control.unfreeze_clock(info, reset=True)


def test_open_uploads_are_listed_page_by_page_with_their_start_time(ctx):
    client = ctx.client("s3")
    started = ctx.now()
    keys = [f"runctl/pages/checkpoints/r/part-{i}.pt" for i in range(3)]
    ids = [client.create_multipart_upload(Bucket=SANDBOX_BUCKET, Key=k)["UploadId"] for k in keys]
    try:
        first = client.list_multipart_uploads(Bucket=SANDBOX_BUCKET, Prefix="runctl/pages/", MaxUploads=2)
        assert first["IsTruncated"] and [u["Key"] for u in first["Uploads"]] == keys[:2]
        assert abs((first["Uploads"][0]["Initiated"] - started).total_seconds()) < 60  # the sandbox clock's time
        uploads = s3_storage.list_open_uploads(ctx, SANDBOX_BUCKET, "runctl/pages/")
        assert sorted(u.key for u in uploads) == keys
    finally:
        for key, upload_id in zip(keys, ids, strict=True):
            client.abort_multipart_upload(Bucket=SANDBOX_BUCKET, Key=key, UploadId=upload_id)


def test_resources_summary_shows_the_bucket_s_s3_storage(ctx):
    s3.put_bytes(ctx, s3.bucket_for(ctx), "runctl/summarycheck/checkpoints/r/a.pt", b"y" * 2048)
    shown = run_cli("--sandbox", "resources", "summary")
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("S3 storage in "))
    assert line.startswith(f"S3 storage in s3://{SANDBOX_BUCKET}/runctl/: ") and "/month" in line, shown.stdout
    total = sum(o.size for o in s3.list_objects(ctx, SANDBOX_BUCKET, "runctl/").values())
    assert f"({total:,} bytes)" in line
