"""A catalogue of bad inputs through the `runctl` shell command: each one exits 2/3/4 as DESIGN.md
says, prints one error line, `To resolve:` and numbered steps (no traceback), and changes nothing:
the sandbox's snapshot (instances, tags, S3 objects, instance disks) is equal before and after.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rel_helpers import check_error_shape, run_cli

from runctl_jupyter import api, training
from runctl_jupyter.sandbox import control

UNKNOWN = "i-0123456789abcdef0"


@pytest.fixture(scope="module")
def world(sandbox, script):
    """A running instance with the project synced and a finished run, a stopped one, a terminated one."""
    ctx = api.context()
    running = api.create(ctx, "t3.micro", wait=True, project="relproj").instance_id
    launch = training.start_training(ctx, running, script, ["--epochs", "1", "--sleep", "0"])
    training.follow_run(ctx, launch, lambda _t: None)
    stopped = api.create(ctx, "t3.micro", wait=True, project="relproj").instance_id
    api.stop(ctx, stopped, wait=True)
    terminated = api.create(ctx, "t3.micro", wait=True, project="relproj").instance_id
    api.terminate(ctx, terminated, force=True, wait=True)
    yield {"run": running, "stopped": stopped, "term": terminated, "script": str(script)}
    api.terminate(ctx, running, force=True)
    api.terminate(ctx, stopped, force=True)


def _no_world(tmp: Path) -> tuple[dict, tuple[str, ...]]:
    """Outside the sandbox with no credentials and no region (the endpoint is a closed loopback port)."""
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "none"),
           "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_EC2_METADATA_DISABLED": "true"}
    unset = ("RUNCTL_SANDBOX_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_PROFILE")
    return env, unset


# (id, argv with {run}/{stopped}/{term}/{script} placeholders, exit code, extra env, sandbox?)
CASES = [
    ("malformed-id-not-hex", ["aws", "status", "i-nothex"], 2),
    ("malformed-id-short", ["aws", "status", "i-0123"], 2),
    ("malformed-id-uppercase-prefix", ["aws", "status", "I-0123456789abcdef0"], 2),
    ("malformed-id-no-prefix", ["aws", "stop", "0123456789abcdef0"], 2),
    ("malformed-id-checkpoints", ["aws", "checkpoints", "i-xyz"], 2),
    ("unknown-instance-status", ["aws", "status", UNKNOWN], 4),
    ("unknown-instance-monitor", ["aws", "monitor", UNKNOWN], 4),
    ("unknown-instance-train", ["aws", "train", UNKNOWN, "{script}", "--", "--epochs", "1"], 4),
    ("train-on-stopped", ["aws", "train", "{stopped}", "{script}", "--", "--epochs", "1"], 3),
    ("runs-on-stopped", ["aws", "runs", "{stopped}"], 3),
    ("stop-of-terminated", ["aws", "stop", "{term}"], 3),
    ("start-of-terminated", ["aws", "start", "{term}"], 3),
    ("wait-running-on-terminated", ["aws", "wait", "{term}", "--state", "running"], 3),
    ("missing-script-path", ["aws", "train", "{run}", "no/such/script.py", "--", "--epochs", "1"], 2),
    ("unknown-verb", ["aws", "frobnicate", "{run}"], 2),
    ("unknown-flag", ["aws", "status", "{run}", "--colour"], 2),
    ("abbreviated-flag-wai", ["aws", "create", "t3.micro", "--wai"], 2),
    ("abbreviated-flag-sync", ["aws", "train", "{run}", "{script}", "--sync", "--", "--epochs", "1"], 2),
    ("missing-double-dash", ["aws", "train", "{run}", "{script}", "--epochs", "3"], 2),
    ("bad-bucket-name", ["aws", "train", "{run}", "{script}", "--bucket", "UPPER_case", "--", "--epochs", "1"], 2),
    ("bad-region-list", ["resources", "list", "--regions", "nowhere"], 2),
    ("unknown-sort-key", ["resources", "list", "--sort", "colour"], 2),
    ("unknown-state-filter", ["resources", "list", "--filter", "bogus"], 2),
    ("misspelt-region-flag", ["aws", "create", "t3.micro", "--region", "eu-west-9"], 2),
    ("misspelt-region-list", ["resources", "list", "--regions", "us-east-1,eu-west-9"], 2),
    ("unknown-run-id", ["aws", "monitor", "{run}", "--run", "20990101T000000Z-abcdef"], 2),
    ("bad-guardian-upload", ["config", "set", "guardian_upload", "maybe"], 2),
    ("unknown-group-by", ["resources", "summary", "--by", "colour"], 2),
    ("unknown-export-format", ["resources", "list", "--export", "xml"], 2),
    ("negative-threshold-env", ["resources", "list"], 2, {"RUNCTL_WARN_ACCRUED_USD": "-1"}),
    ("non-numeric-setting-env", ["aws", "status", "{run}"], 2, {"RUNCTL_MAX_ATTEMPTS": "zero"}),
    ("unknown-config-name", ["config", "set", "nope", "1"], 2),
    ("bad-config-value", ["config", "set", "max_attempts", "zero"], 2),
    ("max-price-without-spot", ["aws", "create", "t3.micro", "--max-price", "0.5"], 2),
    ("sync-code-maybe", ["aws", "train", "{run}", "{script}", "--sync-code=maybe", "--", "--epochs", "1"], 2),
    ("negative-disk", ["aws", "create", "t3.micro", "--disk-gb", "-5"], 2),
    ("zero-lines", ["aws", "monitor", "{run}", "--lines", "0"], 2),
    ("bad-max-hours", ["aws", "train", "{run}", "{script}", "--max-hours", "-1", "--", "--epochs", "1"], 2),
    # a cap of nan or inf is never reached: it would be accepted and silently never enforced
    ("nan-max-hours", ["aws", "train", "{run}", "{script}", "--max-hours", "nan", "--", "--epochs", "1"], 2),
    ("nan-max-cost", ["aws", "train", "{run}", "{script}", "--max-cost", "NaN", "--", "--epochs", "1"], 2),
    ("inf-max-cost", ["aws", "train", "{run}", "{script}", "--max-cost", "$inf", "--", "--epochs", "1"], 2),
    ("nan-max-price", ["aws", "create", "t3.micro", "--spot", "--max-price", "nan"], 2),
    ("bad-autostop", ["aws", "train", "{run}", "{script}", "--autostop", "soon", "--", "--epochs", "1"], 2),
    ("script-args-on-status", ["aws", "status", "{run}", "--", "--epochs", "1"], 2),
    ("panel-in-a-shell", ["panel"], 2),
    ("sandbox-age-bad-id", ["sandbox", "age", "i-zz", "3"], 2),
    ("sandbox-age-bad-hours", ["sandbox", "age", "{run}", "-3"], 2),
    ("sandbox-clock-bad-duration", ["sandbox", "clock", "--advance", "soon"], 2),
    ("no-credentials-no-region", ["aws", "status", "i-01234567"], 4, None, False),
    ("no-credentials-resources", ["resources", "list"], 4, None, False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_cleanly_and_changes_nothing(case, world, sandbox, tmp_path):
    name, argv, code, extra_env, in_sandbox = (*case, None, True)[:5] if len(case) == 3 else \
        (*case, True)[:5] if len(case) == 4 else case
    argv = [a.format(**world) for a in argv]
    env, unset = dict(extra_env or {}), ()
    if not in_sandbox:
        no_env, unset = _no_world(tmp_path)
        env.update(no_env)
    config_file = Path(env.get("RUNCTL_CONFIG_FILE") or __import__("os").environ["RUNCTL_CONFIG_FILE"])
    before = control.snapshot(sandbox)
    r = run_cli(*(["--sandbox"] if in_sandbox else []), *argv, env=env, unset=unset, cwd=tmp_path)
    after = control.snapshot(sandbox)
    check_error_shape(r, code)
    assert after == before, f"{name} changed the sandbox"
    assert not config_file.exists(), f"{name} wrote the user config file"
