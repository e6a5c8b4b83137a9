"""Errors render as one line + numbered steps with the front end's prefix; settings know their source."""

import pytest

from runctl_jupyter import config
from runctl_jupyter.errors import GuardRefused, Step, UsageError, cmd, translate_aws_errors
from runctl_jupyter.models import validate_instance_id


def test_error_renders_steps_with_prefix():
    err = GuardRefused("Training already running on instance i-01234567 (PID: 42).",
                       [cmd("aws monitor i-01234567", "Wait for current training to complete"), Step("Breathe")])
    assert err.render("runctl").splitlines() == [
        "Error: Training already running on instance i-01234567 (PID: 42).",
        "To resolve:",
        "  1. Wait for current training to complete: runctl aws monitor i-01234567",
        "  2. Breathe",
    ]
    assert err._render_traceback_()[2] == "  1. Wait for current training to complete: %runctl aws monitor i-01234567"
    assert err.exit_code == 3


def test_message_must_be_one_line():
    with pytest.raises(ValueError):
        UsageError("two\nlines")


@pytest.mark.parametrize("bad", ["i-123", "i-0123456789abcdef", "I-01234567", "i-0123456g", "", "sg-01234567"])
def test_instance_id_validation(bad):
    with pytest.raises(UsageError) as err:
        validate_instance_id(bad)
    assert err.value.steps


@pytest.mark.parametrize("good", ["i-01234567", "i-0abc123def4567890"])
def test_valid_instance_ids(good):
    assert validate_instance_id(good) == good


def test_client_error_translation():
    from botocore.exceptions import ClientError, NoRegionError

    with pytest.raises(Exception) as err, translate_aws_errors("stop i-01234567", "i-01234567"):
        raise ClientError({"Error": {"Code": "InvalidInstanceID.NotFound", "Message": "nope"}}, "StopInstances")
    assert "i-01234567 was not found" in err.value.message
    with pytest.raises(Exception) as err, translate_aws_errors("list instances"):
        raise NoRegionError()
    assert err.value.steps[0].command == "config set region us-east-1"


def test_an_accounts_first_spot_launch_without_the_service_linked_role_says_how_to_make_it():
    from botocore.exceptions import ClientError

    with pytest.raises(Exception) as err, translate_aws_errors("launch a t3.micro spot instance"):
        raise ClientError({"Error": {"Code": "AuthFailure.ServiceLinkedRoleCreationNotPermitted",
                                     "Message": "The provided credentials do not have permission"}}, "RunInstances")
    text = err.value.render()
    assert "AWSServiceRoleForEC2Spot" in text.splitlines()[0]
    assert "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com" in text


def test_precedence_flag_env_project_user(tmp_path, monkeypatch):
    user = tmp_path / "user.toml"
    user.write_text('region = "eu-west-1"\nbucket = "from-user"\nwarn_accrued_usd = "20"\n')
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(user))
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text('[tool.runctl]\nbucket = "from-project"\nproject = "demo"\n')
    s = config.resolve(flags={"region": "ap-southeast-1"}, magic={"warn_hourly_usd": 7},
                       cwd=proj, environ={"RUNCTL_BUCKET": "from-env"})
    assert (s.region, s.sources["region"]) == ("ap-southeast-1", "command line")
    assert (s.bucket, s.sources["bucket"]) == ("from-env", "env RUNCTL_BUCKET")
    assert s.project == "demo" and "pyproject.toml" in s.sources["project"]
    assert s.warn_accrued_usd == 20.0 and "user file" in s.sources["warn_accrued_usd"]
    assert s.warn_hourly_usd == 7.0 and s.sources["warn_hourly_usd"] == "%config RunctlMagics"
    assert s.warn_uptime_hours == 24.0 and "warn_uptime_hours" not in s.sources


def test_bad_config_values_are_usage_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(tmp_path / "none.toml"))
    with pytest.raises(UsageError) as err:
        config.resolve(environ={"RUNCTL_WARN_ACCRUED_USD": "-3"}, cwd=tmp_path)
    assert "RUNCTL_WARN_ACCRUED_USD" in err.value.message
    with pytest.raises(UsageError):
        config.set_user_value("no_such_setting", "1", tmp_path / "c.toml")
    path, kept = config.set_user_value("warn_hourly_usd", "8.5", tmp_path / "c.toml")
    assert 'warn_hourly_usd = "8.5"' in path.read_text() and kept is None


def test_a_config_file_that_is_not_utf8_is_an_error_with_steps_and_config_set_repairs_it(tmp_path, monkeypatch):
    from runctl_jupyter import config

    broken = tmp_path / "config.toml"
    broken.write_bytes(b'region = "eu-west-1"\nbucket = "caf\xe9"\n')
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(broken))
    with pytest.raises(UsageError) as err:
        config.resolve(cwd=tmp_path)
    assert err.value.message == f"{broken} is not UTF-8 text."
    assert f"mv {broken} {broken}.broken" in err.value.render()
    # the command the error suggests works, keeps the broken file and starts a fresh one
    path, kept = config.set_user_value("region", "us-west-2", broken)
    assert kept == tmp_path / "config.toml.broken-1" and kept.read_bytes().endswith(b'"caf\xe9"\n')
    assert config.resolve(cwd=tmp_path).region == "us-west-2"


@pytest.mark.parametrize("value", ["a\x01b", "tab\there", "new\nline", "del\x7f"])
def test_config_set_refuses_control_characters_that_would_break_the_next_command(tmp_path, value):
    from runctl_jupyter import config

    with pytest.raises(UsageError) as err:
        config.set_user_value("profile", value, tmp_path / "c.toml")
    assert "control or invisible characters" in err.value.message
    assert not (tmp_path / "c.toml").exists()


def test_config_set_writes_toml_that_reads_back_whatever_the_value_holds(tmp_path, monkeypatch):
    """Quotes and backslashes used to be written raw: invalid TOML, and every later command (the
    `config set` that could repair it too) failed."""
    from runctl_jupyter import config

    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(tmp_path / "c.toml"))
    path, _ = config.set_user_value("profile", 'quote"back\\slash', tmp_path / "c.toml")
    assert config.resolve(cwd=tmp_path).profile == 'quote"back\\slash'
    assert config.set_user_value("region", "eu-west-1", path)[1] is None  # read back fine, nothing kept aside


def test_remote_user_must_be_a_linux_user_name(tmp_path):
    from runctl_jupyter import config

    with pytest.raises(UsageError) as err:
        config.set_user_value("remote_user", "a\x01b", tmp_path / "c.toml")
    assert "Linux user name" in err.value.render()
    assert config.set_user_value("remote_user", "ubuntu", tmp_path / "c.toml")[1] is None


def test_a_multi_line_aws_message_becomes_a_one_line_error():
    """moto (and some AWS services) answer a denied call with XML over several lines: that used to
    crash runctl with "an error message is one line" instead of saying what was refused."""
    from botocore.exceptions import ClientError

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "<Error>\n  <Code>AccessDenied</Code>\n</Error>"}},
                         "GetParameter")
    with pytest.raises(Exception) as err, translate_aws_errors("read the image's parameter"):
        raise denied
    assert err.value.message == "Not allowed to read the image's parameter: <Error> <Code>AccessDenied</Code> </Error>"
