"""One settings schema: `config set` refuses what would break the next command, `config unset` repairs the
user file (whatever it holds), and `config --help` lists the settings from `config.Settings`.

No AWS call: only the user file (under tmp_path) and botocore's bundled region list are read.
"""

from __future__ import annotations

import contextlib
import io
import tomllib

import pytest

from runctl_jupyter import cli, config, dispatch, grammar
from runctl_jupyter.errors import UsageError

ROUTED = ("config", "unset") in dispatch.HANDLERS


@pytest.fixture()
def user_file(tmp_path, monkeypatch):
    """An empty world: the user file under tmp_path, no RUNCTL_* setting in the environment."""
    for name in config.SETTING_NAMES:
        monkeypatch.delenv(f"RUNCTL_{name.upper()}", raising=False)
    path = tmp_path / "runctl" / "config.toml"
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(path))
    monkeypatch.chdir(tmp_path)
    return path


def _shell(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("name", "value"), [("warn_hourly_usd", "nan"), ("warn_accrued_usd", "inf"),
                                             ("sync_max_mb", "Infinity"), ("warn_uptime_hours", "NaN"),
                                             ("max_attempts", "-3"), ("max_attempts", "1e3"),
                                             ("stop_wait_seconds", "0")])
def test_config_set_refuses_a_number_that_would_break_the_next_command(user_file, name, value):
    code, _, err = _shell("config", "set", name, value)
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith(f"Error: Setting {name}={value!r} is invalid: must be a ")
    assert "greater than 0" in lines[0] and lines[1] == "To resolve:"
    assert f"  1. Give a valid value: runctl config set {name} VALUE" in lines
    assert "Traceback" not in err and not user_file.exists()  # nothing was written


@pytest.mark.parametrize(("name", "value", "shown"), [("profile", "dev\x01", r"'\x01'"),
                                                      ("profile", "dev\u200b", r"'\u200b'"),
                                                      ("region", "eu-west-1\n", r"'\n'"),
                                                      ("profile", "tab\there", r"'\t'")])
def test_config_set_refuses_control_characters(user_file, name, value, shown):
    with pytest.raises(UsageError) as err:
        config.set_user_value(name, value)
    assert "control or invisible characters" in err.value.message and shown in err.value.message
    assert err.value.render().splitlines()[1] == "To resolve:"
    assert not user_file.exists()


def test_minus_infinity_is_refused_too(user_file):
    with pytest.raises(UsageError) as err:
        config.set_user_value("sync_max_mb", "-inf")
    assert err.value.message == "Setting sync_max_mb='-inf' is invalid: must be a finite number greater than 0."


def test_config_set_refuses_an_unknown_region_and_names_the_fix(user_file):
    code, _, err = _shell("config", "set", "region", "eu-wset-1")
    assert code == 2
    assert err.splitlines()[0] == "Error: 'eu-wset-1' is not an AWS region."
    assert "For example: runctl config set region eu-west-1" in err
    assert not user_file.exists()
    assert _shell("config", "set", "region", "eu-west-1")[0] == 0
    assert tomllib.loads(user_file.read_text()) == {"region": "eu-west-1"}


def test_config_set_suggests_the_name_meant(user_file):
    with pytest.raises(UsageError) as err:
        config.set_user_value("max_atempts", "3")
    assert err.value.message == "Unknown setting 'max_atempts'."
    assert "Did you mean max_attempts?" in err.value.render()


def test_unset_removes_only_that_value_and_the_default_applies_again(user_file):
    config.set_user_value("max_attempts", "20")
    config.set_user_value("bucket", "my-bucket")
    assert config.resolve().max_attempts == 20
    done = config.unset_user_value("max_attempts")
    assert tomllib.loads(user_file.read_text()) == {"bucket": "my-bucket"}
    settings = config.resolve()
    assert (settings.max_attempts, settings.sources.get("max_attempts", "default")) == (12, "default")
    assert done.messages() == [f"Removed max_attempts = '20' from {user_file}",
                               "max_attempts now comes from the next source down (else its default); "
                               "see `runctl config show`"]
    assert done.messages()[-1].render("%runctl").endswith("see `%runctl config show`")


def test_unset_of_a_value_not_set_changes_nothing_and_says_so(user_file):
    done = config.unset_user_value("region")
    assert not user_file.exists()
    assert done.messages()[0] == f"region was not set in {user_file}: nothing to remove"
    config.set_user_value("bucket", "my-bucket")
    before = user_file.read_bytes()
    config.unset_user_value("region")
    assert user_file.read_bytes() == before


def test_unset_of_an_unknown_name_suggests_the_right_one(user_file):
    with pytest.raises(UsageError) as err:
        config.unset_user_value("regoin")
    assert err.value.message == "Unknown setting 'regoin'." and err.value.exit_code == 2
    assert "Did you mean region?" in err.value.render()


def test_a_file_holding_an_invalid_value_says_how_to_repair_it_and_both_repairs_work(user_file):
    user_file.parent.mkdir(parents=True)
    user_file.write_text('max_attempts = "-3"\nwarn_hourly_usd = "nan"\nregoin = "eu-west-1"\nbucket = "b-1"\n')
    with pytest.raises(UsageError) as err:
        config.resolve()  # what `config show` and every other command run first
    text = err.value.render()
    assert text.splitlines()[0] == (f"Error: Setting max_attempts='-3' (from user file {user_file}) is invalid: "
                                    "must be a whole number greater than 0.")
    assert "Set a valid value: runctl config set max_attempts VALUE" in text
    assert "Or remove it from the user file (the default applies): runctl config unset max_attempts" in text
    # neither repair is stopped by the other bad values the file holds
    config.set_user_value("max_attempts", "20")
    config.unset_user_value("warn_hourly_usd")
    with pytest.raises(UsageError) as err:
        config.resolve()
    assert err.value.message == f"Unknown setting 'regoin' (from user file {user_file})."
    assert "Did you mean region?" in err.value.render()
    assert "Remove it from the user file: runctl config unset regoin" in err.value.render()
    config.unset_user_value("regoin")  # a name runctl does not know, but the file holds: removed
    assert tomllib.loads(user_file.read_text()) == {"bucket": "b-1", "max_attempts": "20"}
    assert config.resolve().max_attempts == 20


def test_unset_keeps_an_unreadable_file_aside_and_starts_a_fresh_one(user_file):
    user_file.parent.mkdir(parents=True)
    user_file.write_bytes(b'region = "eu-west-1\nbucket = "caf\xe9"\n')
    done = config.unset_user_value("region")
    assert done.kept == user_file.with_name("config.toml.broken-1")
    assert done.kept.read_bytes() == b'region = "eu-west-1\nbucket = "caf\xe9"\n'
    assert user_file.read_text() == ""
    assert done.messages()[0] == (f"{user_file} could not be read: it is kept as {done.kept}, "
                                  "and a fresh, empty file was started")
    assert config.resolve().region is None


def test_a_rewrite_keeps_hand_written_keys_and_values_readable(user_file):
    """Keys that need quotes and values holding control characters (escaped by hand) survive a
    rewrite by `config set` / `config unset` as valid TOML."""
    user_file.parent.mkdir(parents=True)
    user_file.write_text('"my key" = "x"\nnote = "a\\u0001b\\ttab"\nmax_attempts = 15\n')
    config.set_user_value("bucket", "my-bucket")
    config.unset_user_value("max_attempts")
    assert tomllib.loads(user_file.read_text()) == {"my key": "x", "note": "a\x01b\ttab", "bucket": "my-bucket"}
    config.unset_user_value("my key")
    config.unset_user_value("note")
    assert config.resolve().bucket == "my-bucket"


def test_a_bad_value_from_the_environment_says_to_fix_the_variable(user_file, monkeypatch):
    monkeypatch.setenv("RUNCTL_SYNC_MAX_MB", "inf")
    with pytest.raises(UsageError) as err:
        config.resolve()
    assert err.value.message == ("Setting sync_max_mb='inf' (from RUNCTL_SYNC_MAX_MB) is invalid: "
                                 "must be a finite number greater than 0.")
    assert "Fix the environment variable RUNCTL_SYNC_MAX_MB, or unset it" in err.value.render()


@pytest.mark.parametrize("words", [["config"], ["config", "set"], ["config", "unset"]])
def test_config_help_lists_every_setting_from_the_schema(words):
    text = grammar.help_text(words)
    for name in config.SETTING_NAMES:
        assert f"\n  {name} " in text, name
    flat = " ".join(text.split())
    assert "max_attempts boto3 attempts per call (throttling, 5xx). Takes a whole number greater than 0; " \
           "default: 12." in flat
    assert "`config unset NAME` removes it" in flat


def test_runctl_config_unset_in_a_shell(user_file):
    assert _shell("config", "set", "max_attempts", "20")[0] == 0
    code, out, err = _shell("config", "unset", "max_attempts")  # what it did: info lines, on stderr
    assert code == 0 and out == "" and f"Removed max_attempts = '20' from {user_file}" in err
    assert "see `runctl config show`" in err and user_file.read_text() == ""
    code, _, err = _shell("config", "unset", "regoin")
    assert code == 2 and "Did you mean region?" in err
