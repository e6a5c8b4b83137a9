"""`make aws-smoke` (scripts/aws-smoke.sh): the quickstart on a real account, opt-in. Here it runs only
its `--sandbox` form, the same steps against the embedded sandbox, and its refusal to start on AWS
without being asked to; it never reaches AWS (tests may only connect to loopback)."""

from __future__ import annotations

import os
import subprocess

from itest_helpers import REPO

SCRIPT = REPO / "scripts" / "aws-smoke.sh"


def _smoke(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNCTL_"))}
    full.update(RUNCTL_SANDBOX_DIR=str(tmp_path / "sandbox"), RUNCTL_CONFIG_FILE=str(tmp_path / "config.toml"),
                **env)
    try:
        return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full,
                              cwd=tmp_path, timeout=240)
    finally:
        if "--sandbox" in args:
            subprocess.run(["runctl", "sandbox", "stop"], capture_output=True, env=full, timeout=60)


def test_the_smoke_refuses_to_spend_money_unless_asked(tmp_path):
    r = _smoke(tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines()[1] == "To resolve:" and "RUNCTL_SMOKE_ACCOUNT=yes" in r.stderr
    assert not (tmp_path / "sandbox").exists()  # nothing started, nothing asked of anyone


def test_the_smoke_steps_pass_in_the_sandbox_and_leave_nothing_running(tmp_path):
    r = _smoke(tmp_path, "--sandbox")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "aws-smoke: passed: create, train, checkpoints, costs, stop, terminate" in r.stderr
    assert "Every checkpoint has a verified copy" in r.stderr
    assert "checkpoint_epoch_2.json" in r.stdout  # the checkpoints table


def test_a_failed_step_still_terminates_what_the_smoke_created(tmp_path):
    r = _smoke(tmp_path, "--sandbox", RUNCTL_SMOKE_EPOCHS="not-a-number")
    assert r.returncode == 5, r.stderr[-3000:]  # the training failed (its own exit code is said)
    iid = next(w for w in r.stderr.split() if w.startswith("i-"))
    assert f"aws-smoke: cleaning up {iid.rstrip(':,')}" in r.stderr.replace("…", "")
    assert "is terminated" in r.stderr and "COULD NOT TERMINATE" not in r.stderr
