"""`resources list` input checks (state filter, region names) and unknown prices in the shell text.

No AWS call is made: the checks run before any client exists (the fake context below has none).
"""

from __future__ import annotations

from typing import Any

import pytest
from costs_rowsdata import make_row

from runctl_jupyter import api, grammar, resources
from runctl_jupyter.costs.caption import caption_text
from runctl_jupyter.costs.table import frame
from runctl_jupyter.costs.text import render_text
from runctl_jupyter.errors import UsageError

IID = "i-0abc123def4567890"
EC2_STATES = "pending, running, stopping, stopped, shutting-down, terminated"


class NoAWS:
    """A context that fails the test if anything asks it for a client, a region or the time."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"an AWS-facing context attribute was used: {name}")


def _steps(err: UsageError, prefix: str = "runctl") -> list[str]:
    return [s.render(prefix) for s in err.steps]


# --- 1. unknown --filter state ---------------------------------------------------------------

def test_unknown_state_filter_is_a_usage_error_listing_the_states() -> None:
    c = grammar.parse(["resources", "list", "--filter", "bogus"])
    with pytest.raises(UsageError) as info:
        api.resources(NoAWS(), state=c.state_filter, verb=c.path[1])
    err = info.value
    assert err.exit_code == 2
    assert err.message == "Unknown instance state 'bogus'."
    assert _steps(err) == [f"Use one of: {EC2_STATES}", "For example: runctl resources list --filter running"]


def test_misspelt_state_suggests_the_close_one_for_the_same_verb() -> None:
    c = grammar.parse(["resources", "summary", "--filter", "runing"])
    with pytest.raises(UsageError) as info:
        api.resources(NoAWS(), state=c.state_filter, verb=c.path[1])
    assert _steps(info.value, "%runctl")[1] == "Did you mean: %runctl resources summary --filter running"


def test_list_frame_checks_the_state_before_any_aws_call() -> None:
    with pytest.raises(UsageError, match="Unknown instance state 'bogus'"):
        resources.list_frame(NoAWS(), state="bogus")


@pytest.mark.parametrize("given,expected", [("running", "running"), ("Stopped", "stopped"),
                                            (" shutting-down ", "shutting-down"), ("terminated", "terminated")])
def test_every_ec2_state_is_accepted(given: str, expected: str) -> None:
    assert resources.check_state(given) == expected


def test_shell_exit_code_for_an_unknown_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: Any) -> None:
    from runctl_jupyter import cli

    for key in [k for k in __import__("os").environ if k.startswith("RUNCTL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(tmp_path / "none.toml"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # a stray call fails; never real AWS
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert cli.main(["resources", "list", "--filter", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[:2] == ["Error: Unknown instance state 'bogus'.", "To resolve:"]
    assert "No instances." not in err


# --- 2. region names ---------------------------------------------------------------------------

@pytest.mark.parametrize("words", [
    ["resources", "list", "--region", "eu-west-9"],
    ["resources", "list", "--regions", "us-east-1,eu-west-9"],
    ["resources", "summary", "--regions", "eu-west-9"],
    ["aws", "create", "t3.micro", "--region", "eu-west-9"],
    ["--region", "eu-west-9", "aws", "status", IID],
])
def test_unknown_region_is_a_one_line_usage_error_with_suggestions(words: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        grammar.parse(words)
    err = info.value
    assert err.exit_code == 2
    assert err.message == "'eu-west-9' is not an AWS region."
    steps = _steps(err)
    assert steps[0] == "Did you mean eu-west-1, eu-west-2 or eu-west-3?"
    fixed = " ".join(words).replace("eu-west-9", "eu-west-1")
    assert steps[1] == f"For example: runctl {fixed}"
    assert "runctl resources list --all-regions" in steps[2]
    assert "InternalError" not in err.render()


def test_region_far_from_any_known_one() -> None:
    with pytest.raises(UsageError) as info:
        grammar.parse(["resources", "list", "--region", "xx-nowhere-9"])
    steps = _steps(info.value)
    assert info.value.message == "'xx-nowhere-9' is not an AWS region."
    assert steps[0] == "Region names look like us-east-1, eu-west-2 or ap-southeast-1"
    assert not any("Did you mean" in s for s in steps)


def test_region_given_with_equals_is_corrected_in_place() -> None:
    with pytest.raises(UsageError) as info:
        grammar.parse(["--debug", "aws", "create", "t3.micro", "--region=eu-wst-1"])
    assert _steps(info.value, "%runctl")[1] == "For example: %runctl aws create t3.micro --region=eu-west-1"


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-2", "ap-southeast-1", "cn-north-1", "us-gov-west-1"])
def test_known_regions_parse(region: str) -> None:
    assert grammar.parse(["resources", "list", "--region", region]).region == region
    assert grammar.parse(["resources", "list", "--regions", f"{region}, us-west-2"]).regions == f"{region}, us-west-2"


def test_api_region_list_is_checked_without_an_aws_call() -> None:
    # The resources panel passes its text field here, not through the grammar.
    with pytest.raises(UsageError, match="'eu-west-9' is not an AWS region"):
        resources.resolve_regions(NoAWS(), "us-east-1, eu-west-9", all_regions=False)
    assert resources.resolve_regions(NoAWS(), "us-east-1, eu-west-1", all_regions=False) == ["us-east-1", "eu-west-1"]


# --- 3. unknown prices in the shell text --------------------------------------------------------

def test_group_with_no_known_price_says_so_instead_of_zero_dollars() -> None:
    text = render_text(frame([make_row("i-1", "x9z.huge", hourly=None)]))
    lines = text.splitlines()
    assert lines[0] == "  x9z.huge (1 running, price unknown)"
    assert lines[1] == "    i-1  running  (1h 0m)  $?/hr"
    assert lines[-1].startswith("  Total: 1 running · $?/hr · $? accrued · ")
    assert "$0.0000" not in text and "$0.00 " not in text
    assert lines[-1].endswith("· 1 running without a known price")


def test_group_with_some_unknown_prices_counts_them() -> None:
    text = render_text(frame([make_row("i-1"), make_row("i-2", hourly=None)]))
    assert text.splitlines()[0] == "  t3.micro (2 running, $0.0104/hr + 1 without a known price)"
    assert "  Total: 2 running · $0.0104/hr · $0.01 accrued" in text


def test_caption_of_nothing_running_is_still_zero() -> None:
    assert caption_text(frame([])).startswith("0 running · $0.0000/hr · $0.00 accrued")
    stopped = frame([make_row("i-1", state="stopped", hourly=None)])
    assert caption_text(stopped).startswith("0 running · $0.0000/hr · $? accrued")


def test_summary_of_a_group_with_an_unknown_price_is_unknown_not_zero():
    import math

    import pandas as pd

    from runctl_jupyter.costs.table import summary

    df = pd.DataFrame({"instance_type": ["x9z.huge", "t3.micro", "t3.micro"], "project": ["p", "p", "p"],
                       "state": ["running", "running", "stopped"],
                       "usd_per_hour": [float("nan"), 0.0104, 0.0104], "accrued_usd": [float("nan"), 0.5, 0.25]})
    out = summary(df, "instance_type").set_index("instance_type")
    assert math.isnan(out.loc["x9z.huge", "usd_per_hour"]) and math.isnan(out.loc["x9z.huge", "accrued_usd"])
    assert out.loc["t3.micro", "usd_per_hour"] == 0.0104 and out.loc["t3.micro", "accrued_usd"] == 0.75


def test_a_misspelt_region_from_the_environment_is_a_usage_error_naming_its_source(monkeypatch):
    from runctl_jupyter import api
    from runctl_jupyter.errors import UsageError

    for name in ("RUNCTL_SANDBOX_DIR", "RUNCTL_SANDBOX_ENDPOINT", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)  # outside the sandbox, whatever ran before
    monkeypatch.setenv("RUNCTL_REGION", "eu-west-9")
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", "/nonexistent/runctl.toml")
    ctx = api.context()
    assert not ctx.is_sandbox
    with pytest.raises(UsageError) as err:
        _ = ctx.region
    text = err.value.render()
    assert "'eu-west-9' is not an AWS region (the region from env RUNCTL_REGION)." in text
    assert "Did you mean eu-west-1" in text and "runctl config show" in text


def _undo_a_spot_create(stubbed, cancel_error: str | None) -> str:
    from runctl_jupyter.aws import ec2
    from runctl_jupyter.models import Instance

    factory, stub = stubbed
    ctx = type("Ctx", (), {"client": staticmethod(lambda service: factory(service, "us-east-1"))})()
    iid = "i-0123456789abcdef0"
    # the instance (what bills) goes first: a user without ec2:CancelSpotInstanceRequests keeps nothing running
    stub("ec2", "us-east-1").add_response(
        "terminate_instances",
        {"TerminatingInstances": [{"InstanceId": iid, "PreviousState": {"Name": "running", "Code": 16},
                                   "CurrentState": {"Name": "shutting-down", "Code": 32}}]},
        {"InstanceIds": [iid]})
    if cancel_error:
        stub("ec2", "us-east-1").add_client_error("cancel_spot_instance_requests", cancel_error,
                                                  "You are not authorized to perform this operation.")
    else:
        stub("ec2", "us-east-1").add_response(
            "cancel_spot_instance_requests",
            {"CancelledSpotInstanceRequests": [{"SpotInstanceRequestId": "sir-abc123", "State": "cancelled"}]},
            {"SpotInstanceRequestIds": ["sir-abc123"]})
    inst = Instance(instance_id=iid, instance_type="t3.micro", state="running", region="us-east-1",
                    lifecycle="spot", spot_request_id="sir-abc123")
    said = ec2.cancel_created(ctx, inst)
    stub("ec2", "us-east-1").assert_no_pending_responses()
    return said


def test_undoing_a_spot_create_terminates_first_then_cancels_the_request(stubbed):
    assert _undo_a_spot_create(stubbed, None) == "its spot request sir-abc123 cancelled"


def test_undoing_a_spot_create_without_the_cancel_permission_still_terminates_and_says_so(stubbed):
    said = _undo_a_spot_create(stubbed, "UnauthorizedOperation")
    assert said.startswith("its spot request sir-abc123 could not be cancelled (UnauthorizedOperation;")
    assert "EC2 console → Spot Requests" in said
