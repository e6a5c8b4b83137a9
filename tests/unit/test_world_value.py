"""The world a context talks to is fixed when it is made (issue 17 item 3): a context made for AWS
never becomes a sandbox one because a cell later started the sandbox, and a sandbox context never
reaches AWS. No request is sent: the clients' endpoints are read."""

from __future__ import annotations

import pytest

from runctl_jupyter import api
from runctl_jupyter.aws.session import AWS_PACING, SANDBOX_PACING, Context, SandboxWorld

SANDBOX = "http://127.0.0.1:9"


@pytest.fixture
def no_world(monkeypatch: pytest.MonkeyPatch, tmp_path):
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "RUNCTL_SANDBOX_DIR",
                "RUNCTL_SANDBOX_ENDPOINT", "RUNCTL_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTTESTTESTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return monkeypatch


def _attach_sandbox(monkeypatch: pytest.MonkeyPatch, folder) -> None:
    """What `sandbox start` exports into the kernel (api.attach_environment)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", SANDBOX)
    monkeypatch.setenv("RUNCTL_SANDBOX_ENDPOINT", SANDBOX)
    monkeypatch.setenv("RUNCTL_SANDBOX_DIR", str(folder))


def test_an_aws_context_stays_on_aws_after_another_cell_starts_the_sandbox(no_world, tmp_path):
    aws = api.context()
    assert not aws.is_sandbox and aws.pacing == AWS_PACING
    _attach_sandbox(no_world, tmp_path / "sb")
    # made before: still AWS, its clients (made now, lazily) ignore the exported AWS_ENDPOINT_URL
    assert not aws.is_sandbox and aws.world_key == "aws"
    assert aws.client("ec2").meta.endpoint_url == "https://ec2.eu-west-1.amazonaws.com"
    assert aws.cache_dir == tmp_path / "cache" / "runctl"
    # made after: the sandbox, pinned to its endpoint, caching in the sandbox's folder
    sandbox = api.context()
    assert sandbox.is_sandbox and sandbox.pacing == SANDBOX_PACING
    assert sandbox.client("ec2").meta.endpoint_url == SANDBOX
    assert sandbox.cache_dir == tmp_path / "sb" / "client"


def test_a_sandbox_context_never_reaches_aws_once_the_sandbox_is_detached(no_world, tmp_path):
    _attach_sandbox(no_world, tmp_path / "sb")
    sandbox = api.context()
    for var in ("AWS_ENDPOINT_URL", "RUNCTL_SANDBOX_ENDPOINT", "RUNCTL_SANDBOX_DIR"):
        no_world.delenv(var)  # `sandbox stop` restored the environment
    assert sandbox.client("s3").meta.endpoint_url == SANDBOX
    assert not api.context().is_sandbox


def test_the_world_is_a_constructor_argument_not_the_environment(no_world, tmp_path):
    ctx = Context(sandbox=SandboxWorld(SANDBOX, tmp_path))
    assert ctx.is_sandbox and ctx.world_key == SANDBOX and ctx.cache_dir == tmp_path / "client"
    assert ctx.client("ssm").meta.endpoint_url == SANDBOX
    assert not Context().is_sandbox  # whatever the environment says
