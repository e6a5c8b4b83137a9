"""The one grammar: split at `--`, no abbreviations, short forms, help without SystemExit."""

import pytest

from runctl_jupyter import grammar
from runctl_jupyter.errors import UsageError

IID = "i-0abc123def4567890"


def test_script_args_after_separator_are_never_parsed():
    c = grammar.parse(["aws", "train", IID, "train.py", "--wait", "--", "--resume", "x", "--wait", "--"])
    assert c.path == ("aws", "train")
    assert c.wait is True
    assert c.resume is None  # the script's --resume is not runctl's
    assert c.script_args == ["--resume", "x", "--wait", "--"]


def test_docs_commands_parse_verbatim():
    assert grammar.parse(f"aws train {IID} script.py --sync-code -- --epochs 10".split()).sync_code is True
    assert grammar.parse(f"aws monitor {IID} --follow".split()).follow is True
    assert grammar.parse(f"aws terminate {IID} --force".split()).force is True
    assert grammar.parse(["resources", "list", "--platform", "aws"]).path == ("resources", "list")


@pytest.mark.parametrize("words,expected", [
    (["train", IID, "s.py"], ("aws", "train")),
    (["monitor", IID], ("aws", "monitor")),
    (["resources"], ("resources", "list")),
    (["resources", "summary"], ("resources", "summary")),
    (["--region", "eu-west-1", "status", IID], ("aws", "status")),
])
def test_short_forms(words, expected):
    assert grammar.parse(words).path == expected


@pytest.mark.parametrize("flag,expected", [
    ("--no-sync-code", False), ("--sync-code=false", False), ("--sync-code=no", False),
    ("--sync-code=true", True), ("--sync-code", True),
])
def test_sync_code_spellings(flag, expected):
    assert grammar.parse(["aws", "train", IID, "s.py", flag]).sync_code is expected


def test_no_abbreviations():
    with pytest.raises(UsageError) as err:
        grammar.parse(["aws", "create", "t3.micro", "--wai"])
    assert "--wai" in err.value.message
    assert err.value.steps[-1].command == "aws create --help"  # (after the did-you-mean: see below)


def test_missing_separator_is_explained_with_the_fixed_command():
    with pytest.raises(UsageError) as err:
        grammar.parse(["aws", "train", IID, "train.py", "--epochs", "5"])
    assert "after `--`" in err.value.message
    assert err.value.steps[0].command == f"aws train {IID} train.py -- --epochs 5"


def test_unknown_subcommand_points_at_help():
    with pytest.raises(UsageError) as err:
        grammar.parse(["aws", "explode", IID])
    assert "invalid choice" in err.value.message
    assert err.value.steps[0].command == "aws --help"
    assert err.value.exit_code == 2


def test_help_is_returned_not_exited():
    text = grammar.help_text(["aws", "train"])
    assert "--sync-code" in text and "--no-sync-code" in text
    top = grammar.help_text()
    for word in ("aws", "resources", "local", "panel", "sandbox", "config"):
        assert word in top


def test_region_before_or_after_command():
    assert grammar.parse(["--region", "eu-west-1", "aws", "status", IID]).region == "eu-west-1"
    assert grammar.parse(["aws", "status", IID, "--region", "us-west-2"]).region == "us-west-2"


def test_bad_values_are_usage_errors():
    with pytest.raises(UsageError):
        grammar.parse(["aws", "create", "t3.micro", "--disk-gb", "-4"])
    with pytest.raises(UsageError):
        grammar.parse(["aws", "train", IID, "s.py", "--max-hours", "zero"])
    with pytest.raises(UsageError):
        grammar.parse(["aws", "status", IID, "--", "x"])


SNAP = "snap-0abc123def4567890"


def test_create_from_snapshot_parses_with_either_id_length():
    c = grammar.parse(["aws", "create", "g5.xlarge", "--from-snapshot", SNAP, "--wait"])
    assert (c.path, c.instance_type, c.from_snapshot, c.wait) == (("aws", "create"), "g5.xlarge", SNAP, True)
    assert grammar.parse(["create", "t3.micro", "--from-snapshot=snap-0123abcd"]).from_snapshot == "snap-0123abcd"
    assert grammar.parse(["create", "t3.micro"]).from_snapshot is None
    assert "--from-snapshot SNAPSHOT_ID" in grammar.help_text(["aws", "create"])


@pytest.mark.parametrize("bad", ["snap-123", "snap-0ABC123DEF4567890", "vol-0abc123def4567890", IID, ""])
def test_a_bad_snapshot_id_exits_2_before_any_aws_call(bad, capsys, monkeypatch):
    from runctl_jupyter import api, cli

    def no_aws(*_a, **_k):
        raise AssertionError("no AWS call may be made for a bad snapshot ID")

    monkeypatch.setattr(api, "context", no_aws)
    assert cli.main(["aws", "create", "t3.micro", "--from-snapshot", bad]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [
        f"Error: '{bad}' is not an EBS snapshot ID (expected snap- followed by 8 or 17 hex digits).",
        "To resolve:",
        "  1. List runctl's snapshots (rows of kind snapshot) and copy an ID: runctl resources list",
        "  2. IDs look like snap-0abc123def4567890",
    ]


@pytest.mark.parametrize("argv", [
    ["aws", "runs", "i-0123456789abcdef0", "--project", "a\nb"],
    ["aws", "create", "t3.micro", "--project", "$(touch x)"],
    ["aws", "monitor", "i-0123456789abcdef0", "--run", "../x"],
    ["aws", "monitor", "i-0123456789abcdef0", "--project", "p q"],
    ["aws", "train", "i-0123456789abcdef0", "train.py", "--project", "x" * 101],
    ["storage", "prune", "--project", ".hidden"],
])
def test_project_names_and_run_ids_are_checked_before_anything_is_sent(argv):
    """They become folders and S3 key parts on the instance: refused up front (exit 2), not there (exit 4)."""
    with pytest.raises(UsageError) as err:
        grammar.parse(argv)
    first = err.value.render().splitlines()[0]
    assert "is not a project name" in first or "is not a run id" in first
    assert err.value.exit_code == 2


def test_a_folder_name_becomes_a_valid_project_name():
    from runctl_jupyter.models import name_problem, project_from_folder

    for folder, name in [("My Project (v2)", "My-Project-v2"), ("résumé", "r-sum"), ("...", "project"),
                         ("ok_name-1.2", "ok_name-1.2")]:
        assert project_from_folder(folder) == name and name_problem(name) is None


@pytest.mark.parametrize(("line", "meant", "fixed"), [
    ("aws create t3.micro --wai", "--wait", "aws create t3.micro --wait"),
    ("aws create t3.micro --spot --max-pric=0.3", "--max-price", "aws create t3.micro --spot --max-price=0.3"),
    (f"aws train {IID} train.py --wiat", "--wait", f"aws train {IID} train.py --wait"),
])
def test_a_near_miss_is_refused_with_the_flag_it_resembles(line: str, meant: str, fixed: str) -> None:
    """No abbreviation or near miss is ever taken; the error names the flag and the corrected command."""
    with pytest.raises(UsageError) as err:
        grammar.parse(line.split())
    first = err.value.steps[0]
    assert first.text == f"Did you mean {meant}" and first.command == fixed
    assert f"%runctl {fixed}" in err.value.render("%runctl")


def test_nothing_close_gets_no_guess() -> None:
    with pytest.raises(UsageError) as err:
        grammar.parse(["aws", "create", "t3.micro", "--zz"])
    assert [s.text for s in err.value.steps] == ["See the usage"]
