"""`storage list|prune`: the grammar (shared by %runctl and the shell), and the lifecycle rule's merge
and AccessDenied handling against a stub S3 client (the sandbox cannot deny)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from runctl_jupyter import cli, grammar, storage
from runctl_jupyter.aws import s3_storage
from runctl_jupyter.errors import UsageError


@pytest.mark.parametrize("words,path", [
    (["storage"], ("storage", "list")),
    (["storage", "--project", "p"], ("storage", "list")),
    (["storage", "list"], ("storage", "list")),
    (["storage", "prune"], ("storage", "prune")),
    (["--region", "eu-west-1", "storage", "prune", "--yes"], ("storage", "prune")),
])
def test_storage_commands_parse(words, path):
    assert grammar.parse(words).path == path


def test_prune_defaults_to_a_dry_run_keeping_two_bundles():
    c = grammar.parse(["storage", "prune", "--project", "p"])
    assert (c.keep, c.yes, c.project) == (2, False, "p")
    c = grammar.parse(["storage", "prune", "--keep", "0", "--yes"])
    assert (c.keep, c.yes) == (0, True)


@pytest.mark.parametrize("keep", ["-1", "two", "1.5", ""])
def test_a_bad_keep_is_a_usage_error_exit_2(keep, capsys):
    with pytest.raises(UsageError) as err:
        grammar.parse(["storage", "prune", "--keep", keep])
    assert err.value.exit_code == 2
    assert "--keep" in str(err.value)
    assert cli.main(["storage", "prune", "--keep", keep]) == 2
    shown = capsys.readouterr().err
    assert "To resolve:" in shown and "runctl storage prune --help" in shown


@pytest.mark.parametrize("words", [["storage", "prune", "--ke", "1"], ["storage", "prune", "--y"],
                                   ["storage", "list", "--keep", "1"], ["storage", "purge"]])
def test_no_abbreviations_and_no_foreign_flags(words):
    with pytest.raises(UsageError):
        grammar.parse(words)


def test_help_names_the_storage_commands():
    assert "storage" in grammar.help_text()
    text = grammar.help_text(["storage", "prune"])
    assert "--keep N" in text and "--yes" in text and "dry run" in text.lower()


@pytest.mark.parametrize("key,where", [
    ("runctl/p/code/bundle-0123abcd.tar.gz", storage.Where("p", "code bundles")),
    ("runctl/p/checkpoints/run-7/model.pt", storage.Where("p", "checkpoints", "run-7")),
    ("runctl/p/checkpoints/loose.pt", storage.Where("p", "checkpoints", "")),
    ("runctl/_evidence/i-0123456789abcdef0.json", storage.Where("-", "evidence")),
    ("runctl/p/fleet-ends/run-7/node-2-exit-1", storage.Where("p", "fleet run ends", "run-7")),
    ("runctl/p/notes.txt", storage.Where("p", "other")),
])
def test_keys_are_classified_by_project_and_kind(key, where):
    assert storage.classify(key) == where


def test_only_bundles_are_prunable():
    assert storage.is_bundle("runctl/p/code/bundle-0123abcd.tar.gz")
    assert not storage.is_bundle("runctl/p/code/other.tar.gz")
    assert not storage.is_bundle("runctl/p/checkpoints/r/bundle-0123abcd.tar.gz")


# --- the lifecycle rule, against a stub client ------------------------------------------------------

def _error(code: str, op: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, op)


class StubS3:
    def __init__(self, rules=None, get_error=None, put_error=None):
        self.rules, self.get_error, self.put_error = rules, get_error, put_error
        self.puts: list[dict] = []
        self.gets = 0

    def get_bucket_lifecycle_configuration(self, Bucket):  # noqa: N803 (boto3's names)
        self.gets += 1
        if self.get_error:
            raise _error(self.get_error, "GetBucketLifecycleConfiguration")
        if self.rules is None:
            raise _error("NoSuchLifecycleConfiguration", "GetBucketLifecycleConfiguration")
        return {"Rules": self.rules}

    def put_bucket_lifecycle_configuration(self, Bucket, LifecycleConfiguration):  # noqa: N803
        if self.put_error:
            raise _error(self.put_error, "PutBucketLifecycleConfiguration")
        self.puts.append(LifecycleConfiguration)


class StubCtx:
    world_key = "stub"

    def __init__(self, client):
        self._client = client

    def client(self, service, region=None):
        return self._client


@pytest.fixture(autouse=True)
def _forget():
    s3_storage.forget_lifecycle()
    yield
    s3_storage.forget_lifecycle()


EXPIRE_LOGS = {"ID": "expire-logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 30}}


def test_the_rule_is_added_to_the_existing_ones_once_per_process():
    stub = StubS3(rules=[EXPIRE_LOGS])
    assert s3_storage.ensure_lifecycle(StubCtx(stub), "b") == "set"
    assert s3_storage.ensure_lifecycle(StubCtx(stub), "b") == "set"
    assert stub.gets == 1 and len(stub.puts) == 1
    (rules,) = [p["Rules"] for p in stub.puts]
    assert rules[0] == EXPIRE_LOGS
    assert rules[1] == {"ID": s3_storage.RULE_ID, "Status": "Enabled", "Filter": {"Prefix": "runctl/"},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}


def test_a_bucket_wide_abort_rule_already_covers_runctl():
    stub = StubS3(rules=[{"ID": "tidy", "Status": "Enabled", "Filter": {"Prefix": ""},
                          "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}])
    assert s3_storage.ensure_lifecycle(StubCtx(stub), "b") == "covered by the bucket's rule tidy"
    assert stub.puts == []


@pytest.mark.parametrize("get_error,put_error,state", [
    (None, "AccessDenied", "not allowed (add s3:PutLifecycleConfiguration)"),
    ("AccessDenied", None, "not allowed (add s3:GetLifecycleConfiguration)"),
])
def test_access_denied_is_remembered_not_raised(get_error, put_error, state):
    stub = StubS3(rules=[EXPIRE_LOGS], get_error=get_error, put_error=put_error)
    assert s3_storage.ensure_lifecycle(StubCtx(stub), "b") == state
    assert s3_storage.ensure_lifecycle(StubCtx(stub), "b") == state
    assert stub.gets == 1 and stub.puts == []  # unreadable rules are never overwritten
    assert s3_storage.lifecycle_state(StubCtx(stub), "b") == state


def test_storage_output_says_the_rule_is_not_allowed():
    u = storage.Usage("b", "us-east-1", 0.023, "2026-11-01", [], [],
                      "not allowed (add s3:PutLifecycleConfiguration)")
    assert storage.lifecycle_line(u) == ("lifecycle rule (abort incomplete multipart uploads after 1 day): "
                                         "not allowed (add s3:PutLifecycleConfiguration)")


def test_money_and_sizes_read_as_a_person_writes_them():
    assert storage.human_bytes(512) == "512 B"
    assert storage.human_bytes(3 * 1024 ** 3) == "3.0 GiB"
    assert storage.usd_month(0.0000001) == "<$0.01/month"
    assert storage.usd_month(2.3) == "$2.30/month"
    assert storage._age(datetime(2026, 1, 3, 5, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)) == "2d 5h"
