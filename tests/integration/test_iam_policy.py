"""docs/iam-policy.json allows every AWS call a full workflow makes (issue 14 item 6).

Every operation botocore sends, from every client a Context builds, is recorded through the
``before-call`` event; presigned URLs and POSTs (sent later by the instance, signed with the
user's credentials) are recorded when they are made. Each is mapped to its IAM action (and, where
the call names it, its resource) and must be allowed by some Allow statement of the policy.
Conditions are not evaluated here (the tag conditions need real IAM); the structural tests below
check that the dangerous actions carry them.
"""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from itest_helpers import REPO

from runctl_jupyter import api, guard, guardian, resources, training
from runctl_jupyter.aws import ec2
from runctl_jupyter.aws.ec2 import MANAGED_TAG
from runctl_jupyter.aws.s3 import SANDBOX_BUCKET
from runctl_jupyter.aws.session import Context

POLICY_PATH = REPO / "docs" / "iam-policy.json"
SCRIPT = REPO / "training" / "train_with_checkpoints.py"
PROJECT = "iampolicy"

# Operations whose IAM action is not service:Operation.
ACTION_OF = {
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:UploadPartCopy": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
    "s3:PresignedPost": "s3:PutObject",
    "s3:GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "s3:PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "s3:ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "s3:ListParts": "s3:ListMultipartUploadParts",
}
# Calls this sandbox workflow does not make but runctl does elsewhere: on real AWS only, World()
# asks STS for the account and RunInstances with --iam-instance-profile passes the instance role;
# undoing a failed spot create cancels its request; checkpoints over the multipart threshold go up
# in parts (aborted on failure). (Every create reads its instance type and image: DescribeInstanceTypes,
# DescribeImages are in the workflow.)
NOT_IN_THIS_WORKFLOW = {
    ("sts:GetCallerIdentity", None),
    ("iam:PassRole", "arn:aws:iam::123456789012:role/runctl-ssm-instance"),
    ("ec2:CancelSpotInstanceRequests", None),
    ("ec2:DescribeSpotPriceHistory", None),
    ("ec2:DescribeRegions", None),
    ("ssm:GetParameters", "arn:aws:ssm:us-east-1::parameter/aws/service/ami-amazon-linux-latest/x"),
    ("s3:PutObject", "arn:aws:s3:::YOUR-BUCKET/runctl/p/checkpoints/big.pt"),
    ("s3:AbortMultipartUpload", "arn:aws:s3:::YOUR-BUCKET/runctl/p/checkpoints/big.pt"),
    # `storage` / `storage prune` (tests/integration/test_storage.py); the lifecycle rule once per process
    ("s3:ListBucketMultipartUploads", "arn:aws:s3:::YOUR-BUCKET"),
    ("s3:ListMultipartUploadParts", "arn:aws:s3:::YOUR-BUCKET/runctl/p/checkpoints/big.pt"),
    ("s3:DeleteObject", "arn:aws:s3:::YOUR-BUCKET/runctl/p/code/bundle-0123456789abcdef.tar.gz"),
    ("s3:GetLifecycleConfiguration", "arn:aws:s3:::YOUR-BUCKET"),
    ("s3:PutLifecycleConfiguration", "arn:aws:s3:::YOUR-BUCKET"),
}


def _policy() -> dict:
    return json.loads(POLICY_PATH.read_text())


def _listed(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _resource(service: str, params: dict) -> str | None:
    """The ARN a call acts on, where the policy scopes it by resource (else None: action only)."""
    if service == "s3" and "Bucket" in params:
        bucket = "YOUR-BUCKET" if params["Bucket"] == SANDBOX_BUCKET else params["Bucket"]
        key = params.get("Key")
        return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")
    if service == "ssm" and "Name" in params:  # GetParameter
        return f"arn:aws:ssm:us-east-1::parameter{params['Name']}"
    return None


class Recorder:
    """Every (IAM action, resource) the Contexts' clients used."""

    def __init__(self):
        self.seen: set[tuple[str, str | None]] = set()
        self.operations: set[str] = set()
        self._hooked: set[int] = set()

    def add(self, service: str, operation: str, params: dict) -> None:
        self.operations.add(f"{service}:{operation}")
        action = f"{service}:{operation}"
        self.seen.add((ACTION_OF.get(action, action), _resource(service, params)))
        if service == "ssm" and operation == "SendCommand":
            self.seen.add(("ssm:SendCommand", f"arn:aws:ssm:us-east-1::document/{params['DocumentName']}"))

    def hook(self, client) -> None:
        if id(client) in self._hooked:
            return
        self._hooked.add(id(client))
        service = client.meta.service_model.signing_name or client.meta.service_model.service_name

        # before-parameter-build carries the API parameters (before-call has only the wire request);
        # botocore emits it for every operation, paginators' and waiters' included.
        client.meta.events.register("before-parameter-build", self._param_hook(service))
        plain_url, plain_post = client.generate_presigned_url, getattr(client, "generate_presigned_post", None)

        def presigned_url(ClientMethod, Params=None, **kw):  # noqa: N803 (botocore's names)
            operation = client.meta.method_to_api_mapping[ClientMethod]
            self.add(service, operation, Params or {})
            return plain_url(ClientMethod, Params=Params, **kw)

        def presigned_post(Bucket, Key, *args, **kw):  # noqa: N803
            self.add(service, "PresignedPost", {"Bucket": Bucket, "Key": Key})
            return plain_post(Bucket, Key, *args, **kw)

        client.generate_presigned_url = presigned_url
        if plain_post is not None:
            client.generate_presigned_post = presigned_post

    def _param_hook(self, service: str):
        def record(params, model, **_kw):
            self.add(service, model.name, params)
        return record


@pytest.fixture()
def recorder(monkeypatch):
    rec = Recorder()
    plain = Context.client

    def client(self, service, region=None, *, presign=False):
        made = plain(self, service, region, presign=presign)
        rec.hook(made)
        return made

    monkeypatch.setattr(Context, "client", client)
    return rec


def _allowed(policy: dict, action: str, resource: str | None) -> bool:
    for st in policy["Statement"]:
        if st["Effect"] != "Allow" or "NotAction" in st or "NotResource" in st:
            continue
        if not any(fnmatchcase(action.lower(), a.lower()) for a in _listed(st["Action"])):
            continue
        if resource is None or any(fnmatchcase(resource, r) for r in _listed(st["Resource"])):
            return True
    return False


def _missing(policy: dict, seen) -> list[str]:
    return sorted(f"{a} on {r or '*'}" for a, r in seen if not _allowed(policy, a, r))


def test_the_policy_allows_every_call_of_a_full_workflow(sandbox, recorder):
    ctx = api.context()
    inst = api.create(ctx, "t3.micro", wait=True, project=PROJECT)
    iid = inst.instance_id
    try:
        launch = training.start_training(ctx, iid, SCRIPT, ["--epochs", "2", "--sleep", "0"], project=PROJECT,
                                         guardian_request=guardian.Request(autostop_s=3600))
        assert training.follow_run(ctx, launch, lambda _text: None).exit_code == 0
        api.status(ctx, iid)
        training.checkpoints_frame(ctx, iid, PROJECT)
        training.runs_frame(ctx, iid, PROJECT)
        resources.list_frame(ctx)
        api.stop(ctx, iid, wait=True)
        api.start(ctx, iid, wait=True)
        snaps = guard.snapshot_volumes(ctx, api.status(ctx, iid), lambda _line: None)
        api.terminate(ctx, iid, force=True, wait=True)
        spot = api.create(ctx, "t3.micro", wait=True, spot=True, from_snapshot=snaps[0])
        ec2.cancel_created(ctx, spot)  # the undo of a create: cancel the spot request, terminate
    finally:
        if api.status(ctx, iid).state not in ("terminated", "shutting-down"):
            api.terminate(ctx, iid, force=True)
    ops = recorder.operations
    # the workflow covered what it is meant to cover
    for op in ("ec2:RunInstances", "ec2:StopInstances", "ec2:StartInstances", "ec2:TerminateInstances",
               "ec2:CreateSnapshot", "ec2:CreateTags", "ssm:SendCommand", "ssm:GetCommandInvocation",
               "s3:PutObject", "s3:GetObject", "s3:PresignedPost"):
        assert op in ops, sorted(ops)
    assert _missing(_policy(), recorder.seen | NOT_IN_THIS_WORKFLOW) == []
    # and the check has teeth: without any one of the actions, the policy falls short
    for action in sorted({a for a, _ in recorder.seen}):
        policy = _policy()
        for st in policy["Statement"]:
            st["Action"] = [a for a in _listed(st["Action"]) if a != action and a != action.split(":")[0] + ":Describe*"
                            ] or ["none:None"]
        assert _missing(policy, recorder.seen), action


def test_send_command_is_never_allowed_on_every_resource():
    for st in _policy()["Statement"]:
        if st["Effect"] == "Allow" and any(fnmatchcase("ssm:sendcommand", a.lower()) for a in _listed(st["Action"])):
            resources_ = _listed(st["Resource"])
            assert "*" not in resources_, st
            for arn in resources_:
                if arn.startswith("arn:aws:ssm:"):
                    assert arn.endswith(":document/AWS-RunShellScript"), st
                else:
                    assert st["Condition"]["StringLike"][f"ssm:resourceTag/{MANAGED_TAG}"], st


def test_instance_writes_are_scoped_to_runctl_instances():
    writes = {"ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"}
    for st in _policy()["Statement"]:
        if st["Effect"] == "Allow" and writes & set(_listed(st["Action"])):
            assert _listed(st["Resource"]) == ["arn:aws:ec2:*:*:instance/*"], st
            assert st["Condition"]["StringLike"][f"aws:ResourceTag/{MANAGED_TAG}"], st
        if st["Effect"] == "Allow" and "ec2:CreateTags" in _listed(st["Action"]):
            assert "Condition" in st, st


def test_pass_role_names_the_instance_role_and_only_for_ec2():
    passes = [st for st in _policy()["Statement"] if "iam:PassRole" in _listed(st["Action"])]
    assert passes
    for st in passes:
        assert _listed(st["Resource"]) == ["arn:aws:iam::*:role/runctl-ssm-instance"], st
        assert st["Condition"]["StringEquals"]["iam:PassedToService"] == "ec2.amazonaws.com", st


def test_every_statement_has_a_sid_and_the_readme_points_at_the_file():
    policy = _policy()
    assert policy["Version"] == "2012-10-17"
    sids = [st.get("Sid") for st in policy["Statement"]]
    assert all(sids) and len(set(sids)) == len(sids)
    assert "docs/iam-policy.json" in (REPO / "README.md").read_text()
    assert Path(POLICY_PATH).is_file()
