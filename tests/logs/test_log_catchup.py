"""Catching up a long log through S3 (log_catchup.py + remote/log_upload.sh), in the sandbox.

A run's log several MB long is shown byte-exact with one SSM command that uploads it and one S3
download, instead of one SSM round trip per ~17 KB of gzip'd data; the live part stays on SSM; without
a bucket the short reads still work and the user is told once; the presigned URL reaches the
instance only on the script's standard input.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from sandbox_env import fresh_instance

from runctl_jupyter import api, follow_view, log_catchup, training
from runctl_jupyter.aws import s3, ssm
from runctl_jupyter.remote import script_path

pytestmark = pytest.mark.sandbox

PROJECT = "catchup"
SPEW = r'''
"""Print TARGET bytes of log lines at once, then LIVE lines INTERVAL s apart (test helper)."""
import random
import sys
import time

target, live, interval = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
rnd = random.Random(11)
out = sys.stdout.buffer
written = step = 0
parts = []
while written < target:
    step += 1
    line = f"step={step:08d} loss={rnd.random() * 2:.6f} tok/s={rnd.randint(9000, 15000)}"
    if step % 7 == 0:
        line += " ünïcødé ✓ 日本語のログ 🚀"
    if step % 4000 == 0:
        line = f"epoch {step // 4000}/30 val_loss={rnd.random():.4f}"
    data = (line + "\n").encode()
    parts.append(data)
    written += len(data)
    if len(parts) >= 2000:
        out.write(b"".join(parts))
        parts.clear()
out.write(b"".join(parts))
out.flush()
for i in range(live):
    time.sleep(interval)
    out.write(f"live line {i} ✓\n".encode())
    out.flush()
'''


@pytest.fixture(scope="module")
def instance(sandbox):
    with fresh_instance(api.context(), PROJECT) as iid:
        yield iid


@pytest.fixture(scope="module")
def spew(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("catchup") / PROJECT
    root.mkdir()
    (root / "pyproject.toml").write_text(f'[project]\nname = "{PROJECT}"\nversion = "0.1.0"\n')
    (root / "spew.py").write_text(SPEW)
    return root / "spew.py"


def _log_on_disk(sandbox, launch: training.Launch) -> bytes:
    return (Path(sandbox.directory) / "instances" / launch.instance_id / "runctl" / launch.project / "runs"
            / launch.run_id / "log").read_bytes()


def _finished_run(ctx, instance, spew, size: int) -> training.Launch:
    launch = training.start_training(ctx, instance, spew, [str(size), "0", "0"], project=PROJECT)
    assert training.wait_for_exit(ctx, launch, timeout_s=120).state == "exited"
    return launch


def _monitor(ctx, launch: training.Launch, capsys) -> tuple[bytes, list[str]]:
    """`aws monitor IID --run RUN` as the front ends call it: (what it printed of the log, its notes)."""
    echoed: list[str] = []
    c = SimpleNamespace(instance_id=launch.instance_id, project=PROJECT, run_id=launch.run_id, follow=False, lines=20)
    fe = SimpleNamespace(echo=echoed.append, prefix="runctl", notebook=False)
    capsys.readouterr()
    follow_view.monitor_command(ctx, c, fe)
    return capsys.readouterr().out.encode(), echoed


def test_monitor_run_of_a_finished_run_shows_a_3mb_log_byte_exact_in_two_ssm_commands(
        sandbox, instance, spew, capsys):
    launch = _finished_run(api.context(), instance, spew, 3_000_000)
    on_disk = _log_on_disk(sandbox, launch)
    assert len(on_disk) > 3_000_000 and "✓".encode() in on_disk
    ctx = api.context()
    shown, notes = _monitor(ctx, launch, capsys)
    assert shown == on_disk  # every byte, multibyte characters included
    assert ctx.calls["ssm.SendCommand"] <= 3  # status + one upload (was ~40 tail reads)
    assert ctx.calls["s3.GetObject"] == 1
    assert notes == [notes[0]] and "exit code 0" in notes[0]  # the header only: no fallback note
    # the temporary copy is gone
    assert not s3.list_objects(ctx, s3.bucket_for(ctx), f"runctl/{PROJECT}/log-transfers/")


def test_a_live_run_catches_up_through_s3_then_follows_live_byte_exact(sandbox, instance, spew, monkeypatch):
    monkeypatch.setattr(log_catchup, "CATCH_UP_BYTES", 128 * 1024)
    ctx = api.context()
    launch = training.start_training(ctx, instance, spew, ["2000000", "12", "0.25"], project=PROJECT)
    pieces: list[str] = []
    follow_ctx = api.context()
    result = training.follow_run(follow_ctx, launch, pieces.append)
    on_disk = _log_on_disk(sandbox, launch)
    assert result.exit_code == 0
    assert "".join(pieces).encode() == on_disk
    assert "live line 11 ✓" in pieces[-1] or "live line 11 ✓" in "".join(pieces[-3:])
    assert result.catch_ups >= 1 and result.caught_up_bytes >= 1_500_000  # the bulk came through S3
    assert result.fetches >= 2  # …and the live part through SSM reads
    assert follow_ctx.calls["s3.GetObject"] == result.catch_ups
    assert follow_ctx.calls["ssm.SendCommand"] < 40


def test_without_a_bucket_the_short_reads_still_work_and_say_so_once(sandbox, instance, spew, monkeypatch,
                                                                      capsys):
    launch = _finished_run(api.context(), instance, spew, 700_000)
    on_disk = _log_on_disk(sandbox, launch)
    monkeypatch.setattr(log_catchup, "CATCH_UP_BYTES", 64 * 1024)
    monkeypatch.setattr(s3, "bucket_for", lambda *_a, **_k: None)  # as on AWS with no bucket configured
    written: list[str] = []
    ctx = api.context()
    result = follow_view.wait_in_foreground(ctx, launch, written.append)
    assert result.state == "succeeded"
    notes = [w for w in written if w.lstrip("\n").startswith("[runctl] Reading the")]
    assert len(notes) == 1, notes
    assert "no S3 bucket is configured" in notes[0] and "config set bucket" in notes[0]
    assert "".join(w for w in written if w not in notes).encode() == on_disk
    assert ctx.calls["s3.GetObject"] == 0 and ctx.calls["ssm.SendCommand"] > 3
    # monitor --run says it once too, before the log
    shown, echoed = _monitor(api.context(), launch, capsys)
    assert shown == on_disk
    assert sum("no S3 bucket is configured" in line for line in echoed) == 1


def test_the_presigned_url_only_travels_on_the_scripts_stdin(sandbox, instance, spew, monkeypatch, capsys):
    launch = _finished_run(api.context(), instance, spew, 1_000_000)
    sent: list[dict] = []
    real_run = ssm.run

    def recording_run(ctx, iid, script, args=(), env=None, timeout_s=ssm.DEFAULT_TIMEOUT_S, stdin=None):
        sent.append({"script": script, "args": list(args), "env": dict(env or {}), "stdin": stdin})
        return real_run(ctx, iid, script, args, env, timeout_s, stdin)

    commands: list[str] = []

    def record_command(params, **_kw):
        if params.get("DocumentName") == "AWS-RunShellScript":
            commands.extend(params["Parameters"]["commands"])

    ctx = api.context()
    ctx.client("ssm").meta.events.register("provide-client-params.ssm.SendCommand", record_command)
    monkeypatch.setattr(ssm, "run", recording_run)
    shown, _ = _monitor(ctx, launch, capsys)
    assert shown == _log_on_disk(sandbox, launch)
    uploads = [s for s in sent if s["script"] == "log_upload"]
    assert len(uploads) == 1
    url = uploads[0]["stdin"].strip()
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    assert url.startswith("http") and len(signature) == 64
    for s in sent:  # not in any script's argv or environment
        assert signature not in " ".join(s["args"]) and signature not in " ".join(s["env"].values())
    upload_command = next(c for c in commands if "log_upload.sh" in c)
    run_line = next(line for line in upload_command.splitlines() if "log_upload.sh" in line)
    assert signature not in run_line  # only inside the stdin heredoc, in root's own temp folder
    # nowhere on the instance's disk (the run's log, its folder, the scripts' folder), nor in the output
    disk = Path(sandbox.directory) / "instances" / instance
    for path in disk.rglob("*"):
        if path.is_file():
            assert signature.encode() not in path.read_bytes(), path
    assert signature not in capsys.readouterr().out


def test_log_upload_sh_reports_what_it_sent_and_refuses_without_a_url(tmp_path: Path) -> None:
    """The script alone (no S3): bad arguments and no URL are refused before anything is read."""
    log = tmp_path / "log"
    log.write_bytes(b"abc\n")
    r = subprocess.run(["bash", script_path("log_upload"), str(log), "0", "100"], input="", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "no URL" in r.stderr and r.stdout == ""
    r = subprocess.run(["bash", script_path("log_upload"), str(log), "x", "100"], input="http://u\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    r = subprocess.run(["bash", script_path("log_upload"), str(log), "9", "100"], input="http://127.0.0.1:9/x\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "uploaded=0" in r.stdout and "http" not in r.stdout


def test_follow_without_catch_up_is_unchanged_for_short_logs(sandbox, instance, spew):
    """A log under the threshold is read as before: no S3 call at all (nothing presigned)."""
    ctx = api.context()
    launch = training.start_training(ctx, instance, spew, ["20000", "0", "0"], project=PROJECT)
    follow_ctx = api.context()
    pieces: list[str] = []
    result = training.follow_run(follow_ctx, launch, pieces.append)
    assert "".join(pieces).encode() == _log_on_disk(sandbox, launch)
    assert result.catch_ups == 0 and not any(k.startswith("s3.") for k in follow_ctx.calls if follow_ctx.calls[k])
