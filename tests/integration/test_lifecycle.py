"""EC2 lifecycle through the magic and the shell, against the sandbox."""

from __future__ import annotations

import pytest
from itest_helpers import run_cli

from runctl_jupyter import api
from runctl_jupyter.errors import GuardRefused, Step, UsageError, cmd


def _cell(shell, code: str):
    result = shell.run_cell(code)
    return result


def test_magic_lifecycle(shell, capsys):
    r = _cell(shell, "iid = %runctl aws create t3.micro --wait")
    assert r.success, r.error_in_exec
    iid = shell.user_ns["iid"]
    assert iid.startswith("i-")
    out = capsys.readouterr().out
    assert "[sandbox · us-east-1] Created" in out and "ready for commands" in out

    assert _cell(shell, "st = %runctl aws status $iid").success
    assert shell.user_ns["st"].state == "running" and shell.user_ns["st"].ssm_online is True

    assert _cell(shell, "%runctl aws stop $iid --wait").success
    assert api.status(api.context(), iid).state == "stopped"
    assert _cell(shell, "%runctl aws start {iid} --wait").success
    assert api.status(api.context(), iid).state == "running"
    assert _cell(shell, "%runctl aws terminate $iid --wait").success
    assert api.status(api.context(), iid).state == "terminated"


def test_errors_render_compactly_and_raise(shell, capsys):
    r = _cell(shell, "%runctl aws status i-nothex")
    assert not r.success and isinstance(r.error_in_exec, UsageError)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    assert "To resolve:" in text and "%runctl resources list" in text


def test_help_prints_instead_of_exiting(shell, capsys):
    assert _cell(shell, "%runctl --help").success
    assert _cell(shell, "%runctl aws train --help").success
    out = capsys.readouterr().out
    assert "usage: %runctl" in out and "--sync-code" in out


def test_unknown_instance_is_a_clear_error(ctx):
    with pytest.raises(Exception) as err:
        api.status(ctx, "i-0123456789abcdef0")
    assert "was not found" in err.value.message
    assert err.value.exit_code == 4


def test_stop_of_terminated_instance_is_refused(ctx, instance):
    api.terminate(ctx, instance, force=True, wait=True)
    with pytest.raises(GuardRefused) as err:
        api.stop(ctx, instance)
    assert "terminated" in err.value.message


def test_start_of_running_instance_is_a_noop_with_a_note(ctx, instance):
    lines: list[str] = []
    inst = api.start(ctx, instance, echo=lines.append)
    assert inst.state == "running"
    assert any("already running" in line for line in lines)


def test_cli_lifecycle_and_exit_codes(sandbox):
    created = run_cli("--sandbox", "aws", "create", "t3.micro", "--wait")
    assert created.returncode == 0, created.stderr
    iid = created.stdout.strip().splitlines()[-1]
    assert iid.startswith("i-")
    status = run_cli("--sandbox", "aws", "status", iid)
    assert status.returncode == 0 and "running" in status.stdout
    bad = run_cli("--sandbox", "aws", "status", "i-zz")
    assert bad.returncode == 2 and "To resolve:" in bad.stderr and "runctl resources list" in bad.stderr
    usage = run_cli("aws", "create", "t3.micro", "--wai")
    assert usage.returncode == 2 and "runctl aws create --help" in usage.stderr
    assert run_cli("--sandbox", "aws", "terminate", iid, "--force").returncode == 0


def test_no_sandbox_running_is_explained(tmp_path):
    r = run_cli("--sandbox", "aws", "status", "i-01234567", env={"RUNCTL_SANDBOX_DIR": str(tmp_path)})
    assert r.returncode == 4
    assert "No sandbox is running" in r.stderr and "runctl sandbox start" in r.stderr


def test_no_credentials_outside_the_sandbox(tmp_path):
    # Outside the sandbox, with nothing configured; the endpoint still points at a closed loopback port.
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
           "RUNCTL_SANDBOX_DIR": str(tmp_path)}
    unset = ("RUNCTL_SANDBOX_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_PROFILE")
    r = run_cli("aws", "status", "i-01234567", env=env, unset=unset)
    assert r.returncode == 4
    assert "region" in r.stderr.lower() or "credentials" in r.stderr.lower()
    assert "Traceback" not in r.stderr


def test_usage_error_for_max_price_without_spot(shell):
    r = shell.run_cell("%runctl aws create t3.micro --max-price 0.5")
    assert isinstance(r.error_in_exec, UsageError)


@pytest.mark.parametrize("spot", [False, True])
def test_create_wait_that_fails_leaves_nothing_behind(ctx, monkeypatch, spot):
    """The SSM agent never comes Online (e.g. no instance profile): create --wait fails and terminates
    the instance it launched (cancelling its spot request), instead of leaving it billing."""
    from runctl_jupyter.aws import ec2
    from runctl_jupyter.errors import BackendError

    real_wait = ec2.wait_for
    launched: list[str] = []

    def agent_never_online(ctx, instance_id, state, echo=None):
        launched.append(instance_id)
        real_wait(ctx, instance_id, "running")
        raise BackendError(f"Instance {instance_id} is running but its SSM agent did not come Online within 1 s.",
                           [Step("Give it an instance profile"), cmd(f"aws wait {instance_id}", "Then wait again")])

    monkeypatch.setattr(ec2, "wait_for", agent_never_online)
    with pytest.raises(BackendError) as err:
        api.create(ctx, "t3.micro", wait=True, project="itest", spot=spot)
    (iid,) = launched
    assert err.value.message.endswith(f"terminated {iid}, which this create had just launched.")
    rendered = err.value.render()
    assert "aws wait" not in rendered and "runctl aws create t3.micro --wait" in rendered
    monkeypatch.setattr(ec2, "wait_for", real_wait)
    assert api.status(ctx, iid).state in ("shutting-down", "terminated")
    if spot:
        requests = ctx.client("ec2").describe_spot_instance_requests()["SpotInstanceRequests"]
        # (moto's RunInstances makes no spot request; tests/costs checks the cancel call with a Stubber)
        assert all(r["State"] in ("cancelled", "closed") for r in requests if r.get("InstanceId") == iid)


def test_a_stuck_wait_says_what_it_waits_for_and_ends_at_the_sandbox_deadline(ctx, sandbox, monkeypatch):
    """A wait never shows nothing for minutes: it names what it waits for and its deadline, and past
    it says the instance's state and what to do (here the sandbox keeps the instance pending)."""
    import dataclasses

    from runctl_jupyter.errors import BackendError
    from runctl_jupyter.sandbox import control


    ctx.pacing = dataclasses.replace(ctx.pacing, waiter_max_s=2)  # the sandbox's own deadline is 30 s
    info = control.status()
    said: list[str] = []
    before = control.set_delays(info)["pending"]
    control.set_delays(info, pending=120)
    try:
        with pytest.raises(BackendError) as err:
            api.create(ctx, "t3.micro", wait=True, project="itest", echo=said.append)
    finally:
        control.set_delays(info, pending=before)
    iid = said[0].split("Created ")[1].split()[0]
    assert said[1] == f"[sandbox · us-east-1] Waiting for {iid} to be running with its SSM agent Online (up to 2 s)…"
    assert err.value.message.startswith(f"{iid} was not running with its SSM agent Online within 2 s (it is pending).")
    rendered = err.value.render()
    assert "runctl sandbox status" in rendered and f"runctl aws status {iid}" in rendered
    assert api.status(ctx, iid).state in ("shutting-down", "terminated")  # create cleaned up after itself


def test_a_frozen_sandbox_clock_dates_what_the_cost_table_shows(ctx, instance):
    """Price dates, launch times and run ids come from the sandbox clock, never the machine's: a
    notebook frozen on a day shows that day whatever day it is run on."""
    from runctl_jupyter import resources
    from runctl_jupyter.costs.caption import caption_text
    from runctl_jupyter.sandbox import control
    from runctl_jupyter.training.runs import new_run_id

    day = "2024-02-29"  # not today, whatever today is
    api.sandbox_clock(freeze=f"{day}T23:30:00+00:00")
    try:
        df = resources.list_frame(ctx)
        row = df[df.instance_id == instance].iloc[0]
        assert (row.price_source, str(row.price_as_of)) == ("pricing-api", day)
        assert "prices: pricing-api (2024-02-29)" in caption_text(df[df.instance_id == instance])
        assert new_run_id(ctx).startswith("20240229T233000Z-")
    finally:
        control.unfreeze_clock(control.status(), reset=True)
