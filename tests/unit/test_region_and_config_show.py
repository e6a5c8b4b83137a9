"""Region resolution honours AWS_REGION (as the AWS CLI v2 does); `config show` shows effective values.

No AWS call is made: building a boto3 session reads only the environment and (absent) config files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runctl_jupyter import config
from runctl_jupyter.aws.session import Context
from runctl_jupyter.errors import CredentialsError, UsageError


@pytest.fixture()
def aws_env(tmp_path, monkeypatch):
    """No AWS config, no region, no profile, not in the sandbox, no user config file."""
    for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                "RUNCTL_SANDBOX_ENDPOINT", "RUNCTL_REGION", "RUNCTL_PROFILE", "RUNCTL_BUCKET", "RUNCTL_PROJECT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(tmp_path / "no-user-config.toml"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def _ctx(tmp_path: Path, **flags) -> Context:
    from runctl_jupyter import api

    return Context(config.resolve(flags=flags, cwd=tmp_path), sandbox=api.attached_world())


def test_aws_region_is_honoured(aws_env, tmp_path):
    aws_env.setenv("AWS_REGION", "eu-west-3")
    ctx = _ctx(tmp_path)
    assert ctx.region == "eu-west-3"
    assert ctx.region_source() == ("eu-west-3", "env AWS_REGION")
    assert ctx.session.region_name == "eu-west-3"  # the clients get it too


def test_aws_region_comes_before_aws_default_region(aws_env, tmp_path):
    aws_env.setenv("AWS_REGION", "eu-west-3")
    aws_env.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert _ctx(tmp_path).region == "eu-west-3"
    aws_env.delenv("AWS_REGION")
    assert _ctx(tmp_path).region_source() == ("us-west-2", "env AWS_DEFAULT_REGION")


def test_runctl_region_comes_before_aws_region(aws_env, tmp_path):
    aws_env.setenv("AWS_REGION", "eu-west-3")
    aws_env.setenv("RUNCTL_REGION", "ap-south-1")
    assert _ctx(tmp_path).region_source() == ("ap-south-1", "env RUNCTL_REGION")
    assert _ctx(tmp_path, region="us-east-2").region == "us-east-2"


def test_no_region_at_all_is_explained(aws_env, tmp_path):
    with pytest.raises(CredentialsError) as err:
        _ = _ctx(tmp_path).region
    assert "AWS_REGION" in err.value.render()


def test_a_missing_profile_is_a_runctl_error_not_a_traceback(aws_env, tmp_path):
    """A profile that is not in ~/.aws/config is the user's own setting: a usage error (exit 2), said
    before any call is made, its name shortened if it is absurdly long."""
    aws_env.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(UsageError) as err:
        _ = _ctx(tmp_path).session
    assert "no-such-profile" in err.value.message and err.value.exit_code == 2
    aws_env.setenv("AWS_PROFILE", "p" * 5000)
    with pytest.raises(UsageError) as err:
        _ = _ctx(tmp_path).session
    assert len(err.value.message) < 300 and "(5,000 characters)" in err.value.message


def _shown(ctx: Context) -> dict[str, tuple]:
    return {name: (value, source) for name, value, source in ctx.explain()}


def test_config_show_in_the_sandbox_shows_the_effective_values(aws_env, tmp_path):
    # what `sandbox start` / `--sandbox` put in the environment (no server is contacted)
    aws_env.setenv("RUNCTL_SANDBOX_ENDPOINT", "http://127.0.0.1:9")
    aws_env.setenv("AWS_REGION", "us-east-1")
    aws_env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    project = tmp_path / "my-project"
    (project / "sub").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n')
    aws_env.chdir(project / "sub")
    shown = _shown(_ctx(project / "sub"))
    assert shown["region"] == ("us-east-1", "sandbox")
    assert shown["bucket"] == ("runctl-sandbox", "sandbox default")
    assert shown["project"][0] == "my-project"
    assert shown["profile"][0] is None and "sandbox" in shown["profile"][1]
    assert shown["remote_user"] == ("ec2-user", "default")


def test_config_show_keeps_explicit_values_and_their_sources(aws_env, tmp_path):
    aws_env.setenv("AWS_REGION", "eu-west-3")
    aws_env.setenv("RUNCTL_BUCKET", "my-bucket")
    aws_env.chdir(tmp_path)
    shown = _shown(_ctx(tmp_path, project="demo"))
    assert shown["region"] == ("eu-west-3", "env AWS_REGION")
    assert shown["bucket"] == ("my-bucket", "env RUNCTL_BUCKET")
    assert shown["project"] == ("demo", "command line")
    assert shown["profile"][0] is None and "boto3" in shown["profile"][1]
