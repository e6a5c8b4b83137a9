"""guardian.sh and launch.sh's guardian hooks run with bash against a fake IMDSv2, S3 and EC2 (127.0.0.1)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sandbox_env import REPO

from runctl_jupyter.remote import parse_fields, script_path

SECRET = "SIGNATURE-5ecret-d0-not-leak"
IID = "i-0123456789abcdef0"


class Fake:
    """IMDSv2 (token required) + an S3 POST form endpoint + an EC2 query endpoint."""

    def __init__(self):
        self.notice: str | None = None
        self.tokens: set[str] = set()
        self.uploads: list[dict] = []
        self.ec2_calls: list[str] = []
        self.refuse: set[str] = set()      # POSTs whose key ends with one of these are refused (403)
        self.unauthorized = 0
        self.list_code = 200               # the S3 ListObjectsV2 answer: its status and its keys
        self.list_keys: list[str] = []
        self.lists_showing_keys = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body=b""):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    token = f"tok{len(fake.tokens)}"
                    fake.tokens.add(token)
                    return self._send(200, token.encode())
                return self._send(400)

            def do_GET(self):
                if self.path.startswith("/latest/meta-data/"):
                    if self.headers.get("X-aws-ec2-metadata-token") not in fake.tokens:
                        fake.unauthorized += 1
                        return self._send(401)
                    if self.path == "/latest/meta-data/spot/instance-action" and fake.notice:
                        return self._send(200, fake.notice.encode())
                    if self.path == "/latest/meta-data/instance-id":
                        return self._send(200, IID.encode())
                    return self._send(404)
                if self.path.startswith("/bucket?list-type=2"):
                    if fake.list_code != 200:
                        return self._send(fake.list_code, b"<Error><Code>AccessDenied</Code></Error>")
                    fake.lists_showing_keys += bool(fake.list_keys)
                    keys = "".join(f"<Contents><Key>{key}</Key></Contents>" for key in fake.list_keys)
                    return self._send(200, f"<ListBucketResult>{keys}</ListBucketResult>".encode())
                if self.path.startswith("/ec2?"):
                    fake.ec2_calls.append(self.path)
                    return self._send(200, b"<StopInstancesResponse/>")
                return self._send(404)

            def do_POST(self):
                length = int(self.headers["Content-Length"])
                raw = self.rfile.read(length)
                msg = BytesParser(policy=HTTP).parsebytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
                fields = {}
                for part in msg.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    fields[name] = part.get_payload(decode=True)
                if any(fields["key"].decode().endswith(name) for name in fake.refuse):
                    return self._send(403, b"<Error><Code>AccessDenied</Code></Error>")
                fake.uploads.append(fields)
                return self._send(204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture()
def fake():
    f = Fake()
    yield f
    f.server.shutdown()


@pytest.fixture()
def root(tmp_path):
    code = tmp_path / "runctl" / "demo" / "code"
    code.mkdir(parents=True)
    shutil.copy(REPO / "training" / "train_with_checkpoints.py", code / "train.py")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in ("guardian", "fetch_checkpoint", "common"):
        shutil.copy(script_path(name), scripts / f"{name}.sh")
    return tmp_path


def _env(root: Path, fake: Fake, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCTL_", "AWS_"))}
    env.update({
        "RUNCTL_ROOT": str(root), "RUNCTL_PYTHON": sys.executable, "RUNCTL_SCRIPTS_DIR": str(root / "scripts"),
        "RUNCTL_GUARDIAN": "1", "RUNCTL_GUARDIAN_POLL": "0.2", "RUNCTL_IMDS_ENDPOINT": fake.url,
        "RUNCTL_G_S3POST": f'url = "{fake.url}/bucket"\nform-string = "policy=POLICY"\n'
                           f'form-string = "x-amz-signature={SECRET}"',
    })
    env.update(extra)
    return env


def _launch(root, env, run_id, *args):
    r = subprocess.run(["bash", script_path("launch"), "demo", run_id, "train.py", *args], env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, r.stderr
    fields = parse_fields(r.stdout)
    assert fields["started"] == "1" and fields["guardian"] == "1"
    return fields


def _wait(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _record(root, run_id):
    path = root / "runctl" / "demo" / "runs" / run_id / "guardian.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _guardian_pids(root) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"guardian.sh" in cmdline and str(root).encode() in cmdline:
                pids.append(int(entry))
    return pids


def test_spot_notice_sigterm_upload_record(root, fake):
    fields = _launch(root, _env(root, fake), "r1", "--epochs", "500", "--sleep", "0.1")
    run = root / "runctl" / "demo" / "runs" / "r1"
    ck = root / "runctl" / "demo" / "checkpoints"
    _wait(lambda: len(list(ck.glob("checkpoint_epoch_*.json"))) >= 2, what="checkpoints")
    # secrets: in a mode-600 file, not in the training's environment, not in any argv
    secret_file = run / ".guardian" / "s3post.curl"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((run / ".guardian").stat().st_mode) == 0o700
    assert SECRET.encode() not in Path(f"/proc/{fields['pid']}/environ").read_bytes()
    fake.notice = '{"action": "terminate", "time": "2025-01-01T00:02:00Z"}'
    rec = _wait(lambda: (r := _record(root, "r1")).get("state") == "acted" and r, what="the guardian to act")
    assert rec["action"] == "spot-notice" and rec["upload"] == "ok" and rec["training"] == "exited after SIGTERM"
    # AWS takes the disk: every checkpoint goes up, the newest (saved on SIGTERM) first
    on_disk = sorted(p.name for p in ck.glob("checkpoint_epoch_*.json"))
    assert len(on_disk) >= 2 and rec["upload_scope"] == "all"
    assert rec["uploaded"] == rec["upload_total"] == str(len(on_disk)) and rec["upload_failed"] == "0"
    assert fake.uploads[0]["key"] == f"runctl/demo/checkpoints/r1/{rec['checkpoint']}".encode()
    assert rec["checkpoint"] == max(on_disk, key=lambda n: int(n.split("_")[-1].split(".")[0]))
    assert sorted(u["key"].decode() for u in fake.uploads) == sorted(f"runctl/demo/checkpoints/r1/{n}" for n in on_disk)
    for upload in fake.uploads:
        assert upload["x-amz-signature"] == SECRET.encode() and list(upload)[-1] == "file"
        assert upload["file"] == (ck / upload["key"].decode().rsplit("/", 1)[1]).read_bytes()
    assert rec["uploaded_bytes"] == rec["upload_total_bytes"] == str(sum((ck / n).stat().st_size for n in on_disk))
    log = (run / "log").read_text()
    assert f"[runctl guardian] spot interruption notice: all {len(on_disk)} checkpoints uploaded (" in log
    assert f"newest {rec['checkpoint']})" in log
    listed = (run / "guardian.uploads").read_text().splitlines()
    assert len(listed) == len(on_disk) and all(line.startswith("@runctl uploaded=") for line in listed)
    assert (run / "exit_code").read_text().strip() == "0"
    for path in (run / "log", run / "guardian.log", run / "guardian.json", run / "guardian.fields"):
        assert SECRET not in path.read_text()
    assert fake.unauthorized == 0  # every metadata GET carried a token
    _wait(lambda: not _guardian_pids(root), timeout=5, what="the guardian to exit")


def test_budget_cap_without_ec2_url_falls_back_to_the_shutdown_command(root, fake):
    marker = root / "shutdown-called"
    env = _env(root, fake, RUNCTL_GUARDIAN_SPOT="0", RUNCTL_GUARDIAN_MAX_SECONDS="1.5",
               RUNCTL_SHUTDOWN_CMD=f"touch {marker}")
    _launch(root, env, "r2", "--epochs", "500", "--sleep", "0.1")
    _wait(marker.exists, what="the shutdown command")
    rec = _record(root, "r2")
    assert rec["action"] == "max-hours" and rec["upload"] == "ok"
    assert rec["instance"] == f"stop requested (touch {marker})"
    assert fake.ec2_calls == []


def test_autostop_uses_the_presigned_ec2_call(root, fake):
    env = _env(root, fake, RUNCTL_GUARDIAN_SPOT="0", RUNCTL_GUARDIAN_AUTOSTOP="1",
               RUNCTL_G_STOP=f'url = "{fake.url}/ec2?Action=StopInstances&X-Amz-Signature={SECRET}"')
    _launch(root, env, "r3", "--epochs", "2", "--sleep", "0")
    _wait(lambda: fake.ec2_calls, what="the stop call")
    assert _wait(lambda: _record(root, "r3").get("state") == "acted")
    rec = _record(root, "r3")
    assert rec["action"] == "autostop" and rec["instance"] == "stop requested (presigned EC2 call)"
    # the instance stops and its disk stays: only the newest of its 2 checkpoints goes up
    assert rec["upload_scope"] == "newest" and len(fake.uploads) == 1
    assert fake.uploads[0]["key"] == b"runctl/demo/checkpoints/r3/checkpoint_epoch_2.json"
    started = float((root / "runctl/demo/runs/r3/ended_at").read_text())
    assert float(rec["detected_at"]) - started >= 1.0
    _wait(lambda: not _guardian_pids(root), timeout=5, what="the guardian to exit")


def test_a_new_run_supersedes_the_old_guardian(root, fake):
    env = _env(root, fake, RUNCTL_GUARDIAN_SPOT="0", RUNCTL_GUARDIAN_AUTOSTOP="30")
    _launch(root, env, "r4", "--epochs", "1", "--sleep", "0")
    _wait(lambda: (root / "runctl/demo/runs/r4/exit_code").exists())
    _launch(root, _env(root, fake, RUNCTL_GUARDIAN_SPOT="0", RUNCTL_GUARDIAN_MAX_SECONDS="1",
                       RUNCTL_SHUTDOWN_CMD="true"), "r5", "--epochs", "300", "--sleep", "0.1")
    _wait(lambda: _record(root, "r4").get("state") == "superseded", what="the old guardian to step aside")
    _wait(lambda: _record(root, "r5").get("state") == "acted")
    _wait(lambda: not _guardian_pids(root), timeout=5, what="no guardian left")


def _serve(body: bytes) -> ThreadingHTTPServer:
    """A loopback HTTP server answering every GET with ``body`` (a presigned GET's stand-in)."""
    handler = type("H", (BaseHTTPRequestHandler,), {
        "log_message": lambda self, *a: None,
        "do_GET": lambda self: (self.send_response(200), self.send_header("Content-Length", str(len(body))),
                                self.end_headers(), self.wfile.write(body)),
    })
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_fetch_checkpoint_puts_the_file_in_place_and_checks_md5(root, fake, tmp_path):
    served = tmp_path / "serve"
    served.mkdir()
    body = b'{"epoch": 3}\n'
    import hashlib

    server = _serve(body)
    try:
        env = {"PATH": os.environ["PATH"], "RUNCTL_ROOT": str(root),
               "RUNCTL_FETCH_URL": f"http://127.0.0.1:{server.server_port}/x?sig={SECRET}",
               "RUNCTL_FETCH_MD5": hashlib.md5(body).hexdigest()}
        r = subprocess.run(["bash", script_path("fetch_checkpoint"), "demo", "checkpoint_epoch_3.json"],
                           env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        dest = root / "runctl/demo/checkpoints/checkpoint_epoch_3.json"
        assert r.stdout.strip() == str(dest) and dest.read_bytes() == body and SECRET not in r.stdout + r.stderr
        env["RUNCTL_FETCH_MD5"] = "0" * 32
        r = subprocess.run(["bash", script_path("fetch_checkpoint"), "demo", "other.json"], env=env,
                           capture_output=True, text=True)
        assert r.returncode == 4 and "md5" in r.stderr
        assert not (root / "runctl/demo/checkpoints/other.json").exists()
    finally:
        server.shutdown()


def test_resume_never_overwrites_the_instances_newer_work(root, tmp_path):
    """--resume auto used to fetch S3's newest copy over the instance's newer, never-uploaded file of
    the same name (mv -f). The newest of the two wins; S3's copy lands beside, never over, a file."""
    import hashlib
    import time

    body = b'{"epoch": 3, "from": "s3"}\n'
    server = _serve(body)
    ck = root / "runctl/demo/checkpoints"
    ck.mkdir(parents=True)
    local = ck / "checkpoint_epoch_3.json"
    local.write_bytes(b'{"epoch": 3, "trained": "on the instance, never uploaded"}\n')
    now = int(time.time())

    def fetch(s3_mtime: int):
        env = {"PATH": os.environ["PATH"], "RUNCTL_ROOT": str(root),
               "RUNCTL_FETCH_URL": f"http://127.0.0.1:{server.server_port}/x?sig={SECRET}",
               "RUNCTL_FETCH_MD5": hashlib.md5(body).hexdigest(), "RUNCTL_FETCH_MTIME": str(s3_mtime)}
        return subprocess.run(["bash", script_path("fetch_checkpoint"), "demo", "checkpoint_epoch_3.json"],
                              env=env, capture_output=True, text=True)

    try:
        kept = local.read_bytes()
        r = fetch(now - 3600)  # S3's copy is older: the instance's own file is the one to resume from
        assert r.returncode == 0 and r.stdout.strip() == str(local), r.stderr
        assert local.read_bytes() == kept and not (ck / "from-s3").exists()
        r = fetch(now + 3600)  # S3's is newer: downloaded beside the instance's file, never over it
        assert r.returncode == 0, r.stderr
        beside = ck / "from-s3" / "checkpoint_epoch_3.json"
        assert r.stdout.strip() == str(beside) and beside.read_bytes() == body and local.read_bytes() == kept
    finally:
        server.shutdown()


# --- a one-time spot instance: terminate only once every checkpoint on its disk is in S3 -------------

def _terminate_env(root, fake, **extra):
    return _env(root, fake, RUNCTL_GUARDIAN_SPOT="0", RUNCTL_GUARDIAN_AUTOSTOP="0.5", RUNCTL_GUARDIAN_END="terminate",
                RUNCTL_G_TERMINATE=f'url = "{fake.url}/ec2?Action=TerminateInstances&X-Amz-Signature={SECRET}"',
                **extra)


def _acted(root, run_id):
    _wait(lambda: _record(root, run_id).get("state") == "acted", what="the guardian to act")
    _wait(lambda: not _guardian_pids(root), timeout=5, what="the guardian to exit")
    return _record(root, run_id)


def test_one_time_spot_autostop_uploads_every_checkpoint_then_terminates(root, fake):
    """Terminating after uploading only the newest checkpoint destroyed every other one with the disk."""
    _launch(root, _terminate_env(root, fake), "t1", "--epochs", "3", "--sleep", "0")
    rec = _acted(root, "t1")
    ck = root / "runctl" / "demo" / "checkpoints"
    names = [f"checkpoint_epoch_{e}.json" for e in (1, 2, 3)]
    assert sorted(p.name for p in ck.iterdir()) == names
    assert sorted(u["key"].decode() for u in fake.uploads) == [f"runctl/demo/checkpoints/t1/{n}" for n in names]
    for upload in fake.uploads:
        assert upload["file"] == (ck / upload["key"].decode().rsplit("/", 1)[1]).read_bytes()
    assert fake.uploads[0]["key"].endswith(b"checkpoint_epoch_3.json")  # newest first
    assert (rec["upload_scope"], rec["upload"], rec["uploaded"], rec["upload_total"], rec["upload_failed"]) == \
        ("all", "ok", "3", "3", "0")
    assert rec["uploaded_bytes"] == str(sum((ck / n).stat().st_size for n in names))
    assert rec["instance"] == "terminate requested (presigned EC2 call)"
    assert len(fake.ec2_calls) == 1 and "Action=TerminateInstances" in fake.ec2_calls[0]
    log = (root / "runctl/demo/runs/t1/log").read_text()
    assert "[runctl guardian] autostop: idle for 0.5s (a one-time spot instance cannot be stopped: terminating " \
           "it): all 3 checkpoints uploaded (" in log


def test_one_time_spot_keeps_running_when_one_upload_fails(root, fake):
    fake.refuse = {"checkpoint_epoch_2.json"}
    _launch(root, _terminate_env(root, fake), "t2", "--epochs", "3", "--sleep", "0")
    rec = _acted(root, "t2")
    assert fake.ec2_calls == []  # not terminated: checkpoint_epoch_2.json has no copy
    assert sorted(u["key"].decode().rsplit("/", 1)[1] for u in fake.uploads) == \
        ["checkpoint_epoch_1.json", "checkpoint_epoch_3.json"]
    assert (rec["upload"], rec["uploaded"], rec["upload_total"], rec["upload_failed"]) == ("partial", "2", "3", "1")
    why = "1 of 3 checkpoints not uploaded (checkpoint_epoch_2.json: S3 refused the presigned POST (HTTP 403; expired?))"
    assert rec["instance"] == f"kept running: {why}"
    log = (root / "runctl/demo/runs/t2/log").read_text()
    assert "NOT terminating it): 2 of 3 checkpoints uploaded; NOT uploaded: checkpoint_epoch_2.json: S3 refused" in log
    assert f"[runctl guardian] instance kept running, and billed, until you act: {why}. To resolve: " in log
    assert f"`runctl aws stop {IID}`" in log
    listed = (root / "runctl/demo/runs/t2/guardian.uploads").read_text()
    assert "@runctl failed=checkpoint_epoch_2.json size=" in listed and listed.count("@runctl uploaded=") == 2
    fields = parse_fields((root / "runctl/demo/runs/t2/guardian.fields").read_text())
    assert fields["instance"] == f"kept running: {why}" and fields["uploaded"] == "2"


def test_one_time_spot_keeps_running_while_another_project_has_checkpoints(root, fake):
    other = root / "runctl" / "other" / "checkpoints" / "sub"
    other.mkdir(parents=True)
    (other / "model.pt").write_bytes(b"weights of another project")
    _launch(root, _terminate_env(root, fake), "t3", "--epochs", "3", "--sleep", "0")
    rec = _acted(root, "t3")
    assert fake.ec2_calls == [] and len(fake.uploads) == 3 and rec["upload"] == "ok"
    assert not any(b"model.pt" in u["key"] for u in fake.uploads)  # its POST covers only runctl/demo/…/t3/
    assert rec["instance"] == "kept running: other projects' checkpoints on this disk, which this guardian " \
                              "cannot copy: other (1 file)"
    assert rec["other_projects"] == "other (1 file)"
    assert "instance kept running, and billed, until you act: other projects' checkpoints" in \
        (root / "runctl/demo/runs/t3/log").read_text()


def test_temporary_files_follow_the_checkpoint_listings_rule(root, fake):
    """A recent .NAME.tmp… is an atomic write in progress (left out, as checkpoints.sh does); an old one
    may be all that is left of a checkpoint after a crash: it is uploaded (own project) or it blocks the
    terminate (another project)."""
    ck = root / "runctl" / "demo" / "checkpoints"
    ck.mkdir(parents=True)
    (ck / ".recent.pt.tmp.42").write_bytes(b"half written")
    old_tmp = ck / ".crashed.pt.tmp.7"
    old_tmp.write_bytes(b"all that is left")
    os.utime(old_tmp, (time.time() - 3600, time.time() - 3600))
    other = root / "runctl" / "other" / "checkpoints"
    other.mkdir(parents=True)
    (other / ".model.pt.tmp.9").write_bytes(b"being written")
    _launch(root, _terminate_env(root, fake), "t4", "--epochs", "1", "--sleep", "0")
    rec = _acted(root, "t4")
    assert sorted(u["key"].decode().rsplit("/", 1)[1] for u in fake.uploads) == \
        [".crashed.pt.tmp.7", "checkpoint_epoch_1.json"]
    assert rec["uploaded"] == rec["upload_total"] == "2" and rec["instance"] == "terminate requested (presigned EC2 call)"
    assert len(fake.ec2_calls) == 1
    # the same for another project: an old temporary file there is a checkpoint this guardian cannot copy
    os.utime(other / ".model.pt.tmp.9", (time.time() - 3600, time.time() - 3600))
    fake.uploads.clear()
    fake.ec2_calls.clear()
    _launch(root, _terminate_env(root, fake), "t5", "--epochs", "1", "--sleep", "0")
    rec = _acted(root, "t5")
    assert fake.ec2_calls == [] and rec["instance"].endswith("cannot copy: other (1 file)")


def _fleet_env(root: Path, fake: Fake, node: int) -> dict[str, str]:
    prefix = "runctl/demo/fleet-ends/f1/"
    return _env(root, fake, RUNCTL_GUARDIAN_FLEET_NODE=str(node), RUNCTL_GUARDIAN_FLEET_PREFIX=prefix,
                RUNCTL_GUARDIAN_FLEET_POLL="0.2", RUNCTL_GUARDIAN_SPOT="0",
                RUNCTL_G_FLEETPOST=f'url = "{fake.url}/bucket"\nform-string = "x-amz-signature={SECRET}"',
                RUNCTL_G_FLEETLIST=f'url = "{fake.url}/bucket?list-type=2&prefix=runctl%2Fdemo%2Ffleet-ends%2Ff1%2F"')


def test_a_fleet_guardian_says_when_s3_refuses_its_list_then_acts_on_the_second_list_showing_an_end(root, fake):
    fake.list_code = 403
    _launch(root, _fleet_env(root, fake, 0), "f1", "--epochs", "500", "--sleep", "0.1")
    rec = _wait(lambda: (r := _record(root, "f1")).get("fleet_watch") and r, what="the refused list to be said")
    assert rec["fleet_watch"].startswith("S3 refused the presigned list (HTTP 403; expired?)")
    assert rec["state"] == "watching"  # a list it cannot read ends nothing
    fake.list_code = 200
    fake.list_keys = ["runctl/demo/fleet-ends/f1/node-0-exit-9", "runctl/demo/fleet-ends/f1/node-2-exit-1"]
    rec = _wait(lambda: (r := _record(root, "f1")).get("state") == "acted" and r, what="the guardian to act")
    # its own key is not an end of another node; node 2's is, and it was acted on at its second sighting
    assert (rec["action"], rec["peer"]) == ("fleet-peer", "node 2 (exit-1)")
    assert fake.lists_showing_keys == 2
    log = (root / "runctl" / "demo" / "runs" / "f1" / "log").read_text()
    assert "received SIGTERM: saved checkpoint_epoch_" in log
    assert "[runctl guardian] fleet: node 2 (exit-1) ended the run, so this node's training was stopped" in log
    # it never said its own run ended: runctl's guardian stopped it because of node 2
    assert not [u for u in fake.uploads if u["key"].decode().startswith("runctl/demo/fleet-ends/")]


def test_a_fleet_node_says_how_its_run_ended(root, fake):
    _launch(root, _fleet_env(root, fake, 1), "f1", "--epochs", "3", "--sleep", "0", "--fail-at-epoch", "2")
    _wait(lambda: _record(root, "f1").get("state") == "done", what="the guardian to finish")
    [posted] = [u for u in fake.uploads if u["key"].decode().startswith("runctl/demo/fleet-ends/")]
    assert posted["key"] == b"runctl/demo/fleet-ends/f1/node-1-exit-3" and posted["file"] == b"node 1: exit-3"
    assert _record(root, "f1")["fleet_post"] == "node-1-exit-3"  # the script exits 3 when it fails on purpose
    fake.uploads.clear()
    _launch(root, _fleet_env(root, fake, 1), "f2", "--epochs", "1", "--sleep", "0")
    _wait(lambda: _record(root, "f2").get("state") == "done", what="the guardian to finish")
    assert [u["key"] for u in fake.uploads] == [b"runctl/demo/fleet-ends/f1/node-1-succeeded"]
