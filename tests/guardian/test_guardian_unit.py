"""Pure decisions of guardian.py (fake credentials) and guardian.sh's static properties."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from runctl_jupyter import guardian
from runctl_jupyter.errors import GuardRefused, UsageError
from runctl_jupyter.remote import script_path, script_text
from runctl_jupyter.remote.replies import GuardianRecord

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def creds(token=None, expiry=None):
    c = SimpleNamespace(access_key="AKIA", secret_key="s", token=token)
    if expiry is not None:
        c._expiry_time = expiry
    return c


def test_static_keys_give_seven_days():
    assert guardian.url_window(creds(), NOW) == (False, NOW + timedelta(days=7))


def test_temporary_credentials_end_the_urls_with_them():
    assert guardian.url_window(creds("tok", NOW + timedelta(hours=2)), NOW) == (True, NOW + timedelta(hours=2))
    assert guardian.url_window(creds("tok", NOW + timedelta(days=30)), NOW) == (True, NOW + timedelta(days=7))
    naive = (NOW + timedelta(hours=3)).replace(tzinfo=None)
    assert guardian.url_window(creds("tok", naive), NOW) == (True, NOW + timedelta(hours=3))
    # temporary without a known expiry: assume the STS default hour
    assert guardian.url_window(creds("tok"), NOW) == (True, NOW + timedelta(hours=1))


def _check(request, until, *, role=False, temporary=True, price=None):
    guardian.check_coverage(request, instance_id="i-0123456789abcdef0", has_role=role, temporary=temporary,
                            valid_until=until, now=NOW, price_per_hour=price)


def test_autostop_beyond_temporary_credentials_is_refused_with_steps():
    with pytest.raises(GuardRefused) as err:
        _check(guardian.Request(autostop_s=3 * 3600), NOW + timedelta(hours=2))
    assert err.value.exit_code == 3
    assert "--autostop reaches 3h after the start" in err.value.message
    assert "temporary (SSO / assumed role)" in err.value.message
    assert "instance profile" in err.value.steps[0].text


def test_max_hours_and_max_cost_horizons():
    with pytest.raises(GuardRefused):
        _check(guardian.Request(max_hours=12), NOW + timedelta(hours=1))
    # $20 at $1/h = 20 h > 8 h
    with pytest.raises(GuardRefused):
        _check(guardian.Request(max_cost=20), NOW + timedelta(hours=8), price=1.0)
    _check(guardian.Request(max_cost=2), NOW + timedelta(hours=8), price=1.0)
    # the first cap reached ends the run: 12 h, although $20 at $0.01/h would take 2000 h
    _check(guardian.Request(max_hours=12, max_cost=20), NOW + timedelta(days=7), temporary=False, price=0.01)


def test_within_the_lifetime_or_with_a_role_is_allowed():
    _check(guardian.Request(autostop_s=1800), NOW + timedelta(hours=2))
    _check(guardian.Request(autostop_s=30 * 86400, max_hours=500), NOW + timedelta(hours=1), role=True)


def test_static_keys_cannot_go_past_seven_days():
    with pytest.raises(GuardRefused) as err:
        _check(guardian.Request(max_hours=8 * 24), NOW + timedelta(days=7), temporary=False)
    assert "cannot outlive 7 days" in err.value.message


class FakeCtx:
    is_sandbox = False

    def __init__(self, credentials, guardian_upload="presigned"):
        self.session = SimpleNamespace(get_credentials=lambda: credentials)
        self.settings = SimpleNamespace(guardian_upload=guardian_upload)

    def now(self):
        return NOW


def test_plan_uses_the_role_only_when_told_it_may_upload():
    inst = SimpleNamespace(instance_id="i-0123456789abcdef0", lifecycle="on-demand", one_time_spot=False,
                           iam_instance_profile=None, region="us-east-1", availability_zone="us-east-1a",
                           instance_type="t3.micro")
    soon = NOW + timedelta(minutes=50)
    with pytest.raises(GuardRefused):
        guardian.plan(FakeCtx(creds("tok", soon)), inst, guardian.Request(autostop_s=3600))
    # an instance profile alone (e.g. only AmazonSSMManagedInstanceCore) does not make uploads possible
    inst.iam_instance_profile = "arn:aws:iam::123456789012:instance-profile/ssm-only"
    with pytest.raises(GuardRefused) as err:
        guardian.plan(FakeCtx(creds("tok", soon)), inst, guardian.Request(autostop_s=3600))
    assert "config set guardian_upload instance-role" in err.value.render()
    p = guardian.plan(FakeCtx(creds("tok", soon), "instance-role"), inst, guardian.Request(autostop_s=3600))
    assert p.mode == "instance-role" and p.end == "stop"
    assert guardian.plan(FakeCtx(creds()), inst, None) is None  # on-demand, nothing asked
    inst.iam_instance_profile = None
    with pytest.raises(UsageError, match="has no instance profile"):
        guardian.plan(FakeCtx(creds("tok", soon), "instance-role"), inst, guardian.Request(autostop_s=3600))


def test_watching_text():
    p = guardian.Plan(spot=True, autostop_s=1800, max_seconds=12 * 3600, max_cost=20, price_per_hour=1.0,
                      price_source="spot-history", mode="presigned", urls_valid_until=NOW, end="terminate")
    assert p.watching() == "watching: spot, autostop 30m, max 12h/$20"


def test_describe_record():
    assert guardian.describe_record(GuardianRecord(True, state="acted", action="spot-notice", checkpoint="c_5.json",
                                                   upload="ok", at="2025-01-01T00:00:00Z", alive=False)) == \
        "acted: spot-notice, c_5.json uploaded at 2025-01-01T00:00:00Z"
    assert guardian.describe_record(GuardianRecord(True, state="watching", watching="spot", alive=True)) == \
        "watching: spot"
    # a one-time spot instance: every checkpoint was to go up; the instance kept running when one did not
    kept = GuardianRecord(True, state="acted", action="autostop", upload_scope="all", upload="partial", uploaded=38,
                          upload_total=40, upload_failed=2, checkpoint="c_40.pt", at="2025-01-01T00:00:00Z",
                          instance="kept running: 2 of 40 checkpoints not uploaded (c_3.pt: S3 refused the "
                                   "presigned POST)")
    assert guardian.describe_record(kept) == \
        "acted: autostop, 38 of 40 checkpoints uploaded at 2025-01-01T00:00:00Z; instance kept running: 2 of 40 " \
        "checkpoints not uploaded (c_3.pt: S3 refused the presigned POST)"
    done = replace(kept, upload="ok", uploaded=40, upload_failed=0, instance="terminate requested (presigned EC2 call)")
    assert guardian.describe_record(done) == "acted: autostop, 40 of 40 checkpoints uploaded at 2025-01-01T00:00:00Z"
    assert guardian.describe_record(GuardianRecord(True, state="acting", action="spot-notice", upload_scope="all")) \
        == "acting: spot-notice, uploading checkpoints"
    assert guardian.describe_record(replace(kept, upload="none", uploaded=0, upload_total=0)).startswith(
        "acted: autostop, no checkpoint at ")
    # a fleet node: which other node's end it acted on, and when it cannot see the others' ends
    peer = GuardianRecord(True, state="acted", action="fleet-peer", peer="node 2 (exit-1)", checkpoint="c_7.pt",
                          upload="ok", at="2025-01-01T00:00:00Z")
    assert guardian.describe_record(peer) == \
        "acted: fleet-peer (node 2 (exit-1) ended the run), c_7.pt uploaded at 2025-01-01T00:00:00Z"
    blind = GuardianRecord(True, state="watching", watching="fleet peers", alive=True,
                           fleet_watch="S3 refused the presigned list (HTTP 403; expired?)")
    assert guardian.describe_record(blind) == "watching: fleet peers; S3 refused the presigned list (HTTP 403; expired?)"


def test_a_guardian_record_is_read_from_what_guardian_status_prints():
    rec = GuardianRecord.parse("@runctl guardian=1 run_id=r1 project=demo pid=4242 state=acted action=autostop "
                               "upload_scope=all upload=partial uploaded=3 upload_total=4 upload_failed=1 "
                               "instance=kept%20running%3A%201%20of%204 at=2025-01-01T00%3A00%3A00Z\n"
                               "@runctl guardian_alive=0\n")
    assert (rec.found, rec.run_id, rec.pid, rec.alive) == (True, "r1", 4242, False)
    assert (rec.uploaded, rec.upload_total, rec.upload_failed) == (3, 4, 1)
    assert rec.instance == "kept running: 1 of 4" and rec.at == "2025-01-01T00:00:00Z"
    assert GuardianRecord.parse("@runctl guardian=0\n") == GuardianRecord(found=False)


def test_what_train_says_the_guardian_does_matches_the_end():
    assert "uploads the newest checkpoint and stops the instance" in guardian.ending_text("stop")
    said = guardian.ending_text("terminate")
    assert "uploads every checkpoint and terminates the instance" in said and "keeps it running" in said


@pytest.mark.parametrize("name", ["guardian", "fetch_checkpoint", "guardian_status"])
def test_scripts_syntax_and_style(name):
    r = subprocess.run(["bash", "-n", script_path(name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = script_text(name)
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -u\n" in text and "eval " not in text


def test_guardian_usage_exits_2(tmp_path):
    r = subprocess.run(["bash", script_path("guardian")], capture_output=True, text=True,
                       env={"RUNCTL_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and r.stderr.startswith("runctl: usage:")
