"""A full workflow as an IAM user whose only policy is docs/iam-policy.json, with moto enforcing IAM.

The user's policy is the file with ``YOUR-BUCKET`` replaced by the sandbox's bucket, as the README tells
a user to (account and region are wildcards in it already). Its own sandbox (this server's whole moto
world enforces IAM once told to, so it is not the session's): the setup calls (CreateUser,
PutUserPolicy, CreateAccessKey) are made before enforcement begins (moto's ``POST
/moto-api/reset-auth`` with ``0``); from then on every call moto answers is checked against the
caller's policies, the sandbox's own ``testing`` credentials included (refused at the end).

What IAM really checks here (signature, then the caller's policies):
- every call moto answers: EC2 (DescribeInstances, DescribeImages, DescribeInstanceTypes, RunInstances,
  CreateTags, StopInstances, TerminateInstances — the sandbox's lifecycle seam hands Run/Start/Stop/
  Terminate/CreateSnapshot to moto with their signature and adds its timing after), S3 (CreateBucket,
  HeadBucket, GetBucketLocation, Get/PutBucketLifecycleConfiguration, ListObjectsV2, PutObject,
  GetObject, HeadObject), SSM GetParameter (the image ID), IAM;
- the instance's presigned S3 URLs (the code bundle's GET, the checkpoints' PUTs at stop): moto cannot
  check those (it reads only the Authorization header, and fails on a request without one), so the
  sandbox checks each against its signer's policies with moto's own evaluator (sandbox/app.py): the
  action on the object's ARN. (Presigned POST forms and presigned EC2 calls, the guardian's, are
  refused under enforcement: nothing evaluates them; this workflow starts no guardian.)

What it cannot check:
- the calls the sandbox answers itself, never shown to moto's authorizer: SSM SendCommand,
  GetCommandInvocation, ListCommands, ListCommandInvocations, CancelCommand,
  DescribeInstanceInformation (sandbox/ssm_api.py), pricing:GetProducts (sandbox/pricing.py) and
  ec2:DescribeSpotPriceHistory (sandbox/spot.py) — in this workflow SendCommand,
  GetCommandInvocation, DescribeInstanceInformation and GetProducts, asserted below; nor the
  sandbox's own refusals that come before moto (IncorrectInstanceState, a one-time spot's
  UnsupportedOperation: AWS checks IAM first). test_iam_policy.py checks their actions against the
  file statically;
- resources outside S3: moto asks about ``*`` for every EC2 and SSM action (it names no instance,
  image, document or parameter), so a statement scoped to ARNs (``…:instance/*``,
  ``…:document/AWS-RunShellScript``, ``…:parameter/aws/service/*``) never matches in moto. The policy
  moto is given (``_as_moto_evaluates``) is the file with those non-S3 resources widened to ``*``,
  and only those: the same statements, actions and conditions; S3 ARNs exactly as written. The
  actions are checked; which instance, document or parameter is not. One S3 name differs: moto asks
  for ``s3:HeadBucket`` (no such IAM action; AWS checks ``s3:ListBucket``), so the statement that
  grants ``s3:ListBucket`` grants that name too;
- conditions: moto implements only ``StringEquals``, compared with values it never has for these calls
  (and not ``StringLike``), so every condition holds; ``runctl:created`` tag scoping is not checked.
  Hence the refused call below is an action the policy lacks (ec2:RebootInstances on runctl's own
  instance), not an untagged instance.

Without any one of ec2:RunInstances, ec2:StopInstances, ec2:TerminateInstances or s3:GetObject (the
last refused to the instance's presigned download) in the file, this test fails at that step; without
ssm:SendCommand it passes (checked by hand, 2026-11-30).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError
from itest_helpers import REPO
from sandbox_env import make_project, running_sandbox

from runctl_jupyter import api, training
from runctl_jupyter.aws import s3
from runctl_jupyter.aws.s3 import SANDBOX_BUCKET

POLICY_PATH = REPO / "docs" / "iam-policy.json"
PROJECT = "iamenforced"
USER = "runctl-notebook"
# Calls of this workflow that moto answers, so checks against the policy (among others)
CHECKED_BY_MOTO = {"ec2.RunInstances", "ec2.CreateTags", "ec2.DescribeInstances", "ec2.StopInstances",
                   "ec2.TerminateInstances", "ssm.GetParameter", "s3.CreateBucket", "s3.PutObject", "s3.GetObject",
                   "s3.HeadObject", "s3.ListObjectsV2"}
# The calls the sandbox answers itself (moto's authorizer never sees them)
ANSWERED_BY_THE_SANDBOX = {"ssm.SendCommand", "ssm.GetCommandInvocation", "ssm.ListCommands",
                           "ssm.ListCommandInvocations", "ssm.CancelCommand", "ssm.DescribeInstanceInformation",
                           "pricing.GetProducts", "ec2.DescribeSpotPriceHistory"}


def _listed(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _as_moto_evaluates(policy: dict) -> dict:
    """The policy with every non-S3 resource ARN widened to ``*``, and moto's name for HeadBucket's
    action where AWS's is granted (see the module's docstring)."""
    for st in policy["Statement"]:
        resources = _listed(st["Resource"])
        kept = [r for r in resources if r.startswith("arn:aws:s3:::")]
        st["Resource"] = kept + ["*"] if len(kept) < len(resources) else kept
        actions = _listed(st["Action"])
        st["Action"] = actions + ["s3:HeadBucket"] if "s3:ListBucket" in actions else actions
    return policy


def user_policy() -> str:
    """docs/iam-policy.json for the sandbox's bucket, as moto can evaluate it."""
    text = POLICY_PATH.read_text().replace("YOUR-BUCKET", SANDBOX_BUCKET)
    return json.dumps(_as_moto_evaluates(json.loads(text)))


def _enforce_iam(endpoint: str) -> None:
    """moto checks every later call against IAM (its server's reset-auth: no unauthenticated calls left)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        assert json.loads(response.read())["status"] == "ok"


def _code(call) -> str:
    with pytest.raises(ClientError) as err:
        call()
    return err.value.response["Error"]["Code"]


def test_a_full_workflow_runs_on_the_documented_policy_alone_and_iam_refuses_the_rest(tmp_path):
    with running_sandbox(tmp_path / "sandbox") as status:
        iam = boto3.client("iam", region_name="us-east-1")  # the sandbox's env: endpoint, `testing` keys
        iam.create_user(UserName=USER)
        iam.put_user_policy(UserName=USER, PolicyName="runctl", PolicyDocument=user_policy())
        key = iam.create_access_key(UserName=USER)["AccessKey"]
        _enforce_iam(status.endpoint)
        os.environ["AWS_ACCESS_KEY_ID"] = key["AccessKeyId"]  # (running_sandbox puts the env back)
        os.environ["AWS_SECRET_ACCESS_KEY"] = key["SecretAccessKey"]

        ctx = api.context()
        script = make_project(tmp_path / PROJECT, PROJECT)
        iid = api.create(ctx, "t3.micro", wait=True, project=PROJECT).instance_id
        launch = training.start_training(ctx, iid, script, ["--epochs", "2", "--sleep", "0"], project=PROJECT)
        assert training.follow_run(ctx, launch, lambda _text: None).exit_code == 0
        cks = training.checkpoints_frame(ctx, iid, PROJECT)
        assert {"checkpoint_epoch_1.json", "checkpoint_epoch_2.json"} <= set(cks[cks["where"] == "instance"].checkpoint)

        # Refused: an action the policy lacks, on runctl's own running instance (moto's code; EC2 says
        # UnauthorizedOperation, which runctl's error mapping knows too)
        ec2 = ctx.client("ec2")
        assert _code(lambda: ec2.reboot_instances(InstanceIds=[iid])) in ("AccessDenied", "UnauthorizedOperation")
        assert _code(lambda: ctx.client("iam").create_user(UserName="someone")) == "AccessDenied"
        # S3 resources are checked: the bucket's runctl/ prefix only, as a call and as a presigned URL
        assert _code(lambda: ctx.client("s3").put_object(Bucket=SANDBOX_BUCKET, Key="other/x", Body=b"x")
                     ) == "AccessDenied"
        outside = s3.presign_get(ctx, SANDBOX_BUCKET, "other/x")
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(outside, timeout=10)  # noqa: S310 (loopback)
        assert denied.value.code == 403

        lines: list[str] = []
        api.stop(ctx, iid, wait=True, echo=lines.append)  # uploads the checkpoints (presigned PUTs), stops
        assert api.status(ctx, iid).state == "stopped"
        api.terminate(ctx, iid, wait=True, echo=lines.append)  # no --force: the copies are verified in S3
        assert api.status(ctx, iid).state == "terminated"
        assert any("verified copy" in line for line in lines), lines

        # The workflow made the calls named above; the ones IAM did not check are these
        assert set(ctx.calls) >= CHECKED_BY_MOTO, sorted(ctx.calls)
        assert set(ctx.calls) & ANSWERED_BY_THE_SANDBOX == {"ssm.SendCommand", "ssm.GetCommandInvocation",
                                                            "ssm.DescribeInstanceInformation", "pricing.GetProducts"}

        # Enforcement covers every caller: the sandbox's own test keys are no IAM user's
        plain = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="testing",
                             aws_secret_access_key="testing")
        assert _code(plain.describe_instances) == "AuthFailure"
