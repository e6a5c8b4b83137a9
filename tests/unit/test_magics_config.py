"""`%config RunctlMagics.*`: one trait per setting of `config.Settings`, each checked on set by what
`config set` checks, refused with runctl's message (the value in effect stays as it was).

A real IPython InteractiveShell, in-process, with the extension loaded; no AWS call is made.
"""

from __future__ import annotations

import logging

import pytest
from traitlets.config import Config

from runctl_jupyter import config
from runctl_jupyter.errors import UsageError


@pytest.fixture()
def ip(tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    for name in config.SETTING_NAMES:
        monkeypatch.delenv(f"RUNCTL_{name.upper()}", raising=False)
    for name in ("RUNCTL_SANDBOX_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(tmp_path / "config.toml"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.chdir(tmp_path)
    InteractiveShell.clear_instance()
    cfg = Config()
    cfg.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=cfg)
    shell.run_line_magic("load_ext", "runctl_jupyter")
    yield shell
    InteractiveShell.clear_instance()


def _magics(ip):
    return ip.magics_manager.registry["RunctlMagics"]


def _in_effect(ip) -> dict[str, tuple[str, str]]:
    """`%runctl config show` as {name: (value, source)}."""
    shown = str(ip.run_line_magic("runctl", "config show"))
    rows = [line.split(None, 1) for line in shown.splitlines()]
    return {name: (rest.rsplit("(", 1)[0].strip(), rest.rsplit("(", 1)[1].rstrip(")")) for name, rest in rows}


def _refused(ip, caplog, line: str) -> list[str]:
    """Run `%config LINE` and return the error IPython logged for it (as lines)."""
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        ip.run_line_magic("config", line)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    return errors[0].splitlines()


def test_every_setting_is_a_config_trait(ip):
    traits = _magics(ip).class_traits(config=True)
    assert set(traits) == set(config.SETTING_NAMES)
    assert {"guardian_upload", "retry_mode", "remote_user", "stop_wait_seconds"} <= set(traits)


def test_settings_once_not_recognized_now_take_effect(ip, caplog):
    with caplog.at_level(logging.WARNING):
        ip.run_line_magic("config", "RunctlMagics.guardian_upload = 'instance-role'")
        ip.run_line_magic("config", "RunctlMagics.retry_mode = 'standard'")
        ip.run_line_magic("config", "RunctlMagics.remote_user = 'ubuntu'")
        ip.run_line_magic("config", "RunctlMagics.warn_hourly_usd = 7")
    assert not [r for r in caplog.records if "not recognized" in r.getMessage()]
    shown = _in_effect(ip)
    assert shown["guardian_upload"] == ("instance-role", "%config RunctlMagics")
    assert shown["retry_mode"] == ("standard", "%config RunctlMagics")
    assert shown["remote_user"] == ("ubuntu", "%config RunctlMagics")
    assert shown["warn_hourly_usd"] == ("7.0", "%config RunctlMagics")


def test_a_bad_value_is_refused_with_runctls_message_and_the_old_one_stays(ip, caplog):
    ip.run_line_magic("config", "RunctlMagics.max_attempts = 20")
    lines = _refused(ip, caplog, "RunctlMagics.max_attempts = -3")
    assert lines == [
        "Error: Setting max_attempts=-3 (from %config RunctlMagics) is invalid: must be a whole number greater than 0.",
        "To resolve:",
        "  1. Set a valid value: %config RunctlMagics.max_attempts = VALUE",
        "  2. Or leave it to the other sources: %config RunctlMagics.max_attempts = None",
        "  3. See every setting and what it takes: %runctl config --help",
    ]
    assert _magics(ip).max_attempts == 20
    assert _in_effect(ip)["max_attempts"] == ("20", "%config RunctlMagics")


@pytest.mark.parametrize(("line", "says"), [
    ("RunctlMagics.warn_accrued_usd = float('nan')", "must be a finite number greater than 0."),
    ("RunctlMagics.sync_max_mb = float('inf')", "must be a finite number greater than 0."),
    ("RunctlMagics.retry_mode = 'fast'", "must be standard, adaptive or legacy."),
    ("RunctlMagics.guardian_upload = 'role'", "must be presigned or instance-role."),
    ("RunctlMagics.profile = 'dev\\x01'", "must not hold control or invisible characters (it holds '\\x01')."),
    ("RunctlMagics.bucket = 'My_Bucket'", "an S3 bucket name is 3-63 lowercase letters, digits, dots or hyphens."),
    ("RunctlMagics.stop_wait_seconds = 2.5", "must be a whole number greater than 0."),
])
def test_each_setting_is_checked_by_its_own_parser(ip, caplog, line, says):
    name = line.split(".")[1].split()[0]
    lines = _refused(ip, caplog, line)
    assert lines[0].startswith(f"Error: Setting {name}=") and lines[0].endswith(says)
    assert getattr(_magics(ip), name) is None
    assert _in_effect(ip)[name][1] != "%config RunctlMagics"


def test_a_misspelt_region_is_refused_with_the_fix_as_a_config_line(ip, caplog):
    lines = _refused(ip, caplog, "RunctlMagics.region = 'eu-wset-1'")
    assert lines[0] == "Error: 'eu-wset-1' is not an AWS region."
    assert "  2. For example: %config RunctlMagics.region = 'eu-west-1'" in lines
    ip.run_line_magic("config", "RunctlMagics.region = 'eu-west-1'")
    assert _in_effect(ip)["region"] == ("eu-west-1", "%config RunctlMagics")


def test_none_leaves_the_setting_to_the_other_sources(ip, tmp_path):
    config.set_user_value("max_attempts", "15")
    ip.run_line_magic("config", "RunctlMagics.max_attempts = 30")
    assert _in_effect(ip)["max_attempts"] == ("30", "%config RunctlMagics")
    ip.run_line_magic("config", "RunctlMagics.max_attempts = None")
    assert _in_effect(ip)["max_attempts"] == ("15", f"user file {tmp_path / 'config.toml'}")


def test_config_runctlmagics_lists_the_settings_with_their_help(ip, capsys):
    ip.run_line_magic("config", "RunctlMagics")
    out = " ".join(capsys.readouterr().out.split())
    for name in config.SETTING_NAMES:
        assert f"RunctlMagics.{name}=" in out
    assert "boto3 retry mode. Takes standard, adaptive or legacy; default: adaptive." in out


def test_runctl_config_help_lists_the_settings(ip, capsys):
    assert ip.run_line_magic("runctl", "config --help") is None
    out = capsys.readouterr().out
    assert out.startswith("usage: %runctl config")
    assert all(f"\n  {name} " in out for name in config.SETTING_NAMES)


def test_runctl_config_set_refuses_what_would_break_the_next_command(ip, tmp_path):
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("runctl", "config set warn_hourly_usd nan")
    assert err.value._render_traceback_() == [
        "Error: Setting warn_hourly_usd='nan' is invalid: must be a finite number greater than 0.",
        "To resolve:",
        "  1. Give a valid value: %runctl config set warn_hourly_usd VALUE",
        "  2. See every setting and what it takes: %runctl config --help",
    ]
    assert not (tmp_path / "config.toml").exists()


def test_runctl_config_unset_repairs_a_file_holding_a_bad_value(ip, tmp_path, capsys):
    user_file = tmp_path / "config.toml"
    user_file.write_text('max_attempts = "-3"\nbucket = "my-bucket"\n')
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("runctl", "config show")
    assert "  2. Or remove it from the user file (the default applies): %runctl config unset max_attempts" in \
        err.value._render_traceback_()
    ip.run_line_magic("runctl", "config unset max_attempts")
    assert f"Removed max_attempts = '-3' from {user_file}" in capsys.readouterr().out
    assert user_file.read_text() == 'bucket = "my-bucket"\n'
    assert _in_effect(ip)["max_attempts"] == ("12", "default")
