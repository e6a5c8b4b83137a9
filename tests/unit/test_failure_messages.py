"""Failures said as what they are: a sandbox that dies while a run is followed is said at the next read,
with what it means for the run (its fate is unknown) and no AWS call to ask about it; a code sync that
failed gets the steps for its cause."""

from __future__ import annotations

import socket

import pytest

from runctl_jupyter import api, training
from runctl_jupyter.errors import SandboxNotRunning


def _closed_port() -> int:
    with socket.socket() as s:  # a port nothing listens on any more: connections are refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_following_a_run_when_the_sandbox_died_says_so_and_calls_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNCTL_SANDBOX_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("RUNCTL_CONFIG_FILE", str(tmp_path / "none.toml"))
    ctx = api.context()
    assert ctx.is_sandbox
    launch = training.Launch("i-0123456789abcdef0", "proj", "20261130T090000Z-abc123", 4242, "/x/log")
    with pytest.raises(SandboxNotRunning) as err:
        training.follow_run(ctx, launch, lambda _text: None)
    assert err.value.message.startswith("The sandbox stopped while following run 20261130T090000Z-abc123 on "
                                        "i-0123456789abcdef0: the run's fate is unknown")
    assert err.value.steps[0].command == "sandbox start"
    assert sum(ctx.calls.values()) == 0  # not one AWS call (each would retry for minutes against a dead port)


def test_a_failed_code_sync_gets_the_steps_for_its_cause():
    """(The causes come from sync_apply.sh's `sync_cause=` field: tests/sync/test_sync_causes.py runs it.)"""
    outside = training.launch._sync_failure_steps("unsafe_bundle")
    assert "link leading outside" in outside[0].text and not any("bucket" in s.text for s in outside)
    assert "bucket is reachable" in training.launch._sync_failure_steps("download")[0].text
    assert "requirements.txt" in training.launch._sync_failure_steps("requirements")[0].text
    assert "again" in training.launch._sync_failure_steps(None)[0].text  # a cause the script did not say


def test_a_checkpoint_listing_that_may_be_cut_says_partial(monkeypatch):
    from types import SimpleNamespace

    from runctl_jupyter import guard
    from runctl_jupyter.aws import ec2, s3

    inst = SimpleNamespace(state="running", instance_id="i-0123456789abcdef0")
    monkeypatch.setattr(ec2, "describe", lambda _ctx, _iid: inst)
    monkeypatch.setattr(training.listings, "project_for_instance", lambda _ctx, _inst, _p: "proj")
    monkeypatch.setattr(guard, "list_checkpoints", lambda *_a: guard.Listing(
        [guard.Checkpoint("c1.pt", 1, "0" * 32, 0)], "the checkpoint listing on i-…: a page was cut"))
    monkeypatch.setattr(s3, "bucket_for", lambda *_a, **_k: None)
    ctx = SimpleNamespace(world=lambda: SimpleNamespace(label=lambda: "sandbox · us-east-1"))
    df = training.checkpoints_frame(ctx, "i-0123456789abcdef0")
    assert list(df.checkpoint) == ["c1.pt"]
    assert df.attrs["runctl_caption"].endswith("PARTIAL: the checkpoint listing on i-…: a page was cut; run it again")


def test_the_sandbox_step_is_said_for_where_the_user_is():
    """A notebook's commands go to the sandbox once it started; only a shell needs --sandbox on each."""
    from runctl_jupyter.errors import CredentialsError, sandbox_step

    err = CredentialsError("No AWS region is set.", [sandbox_step()])
    assert err.render("%runctl").splitlines()[-1] == "  1. Or use the embedded sandbox: %runctl sandbox start"
    shell = err.render("runctl").splitlines()[-1]
    assert shell.startswith("  1. Or use the embedded sandbox: runctl sandbox start (then add --sandbox")
    assert "runctl --sandbox" not in err.render("%runctl") and "in a shell" not in err.render("%runctl")
