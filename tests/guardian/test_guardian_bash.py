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


class Fake:
    """IMDSv2 (token required) + an S3 POST form endpoint + an EC2 query endpoint."""

    def __init__(self):
        self.notice: str | None = None
        self.tokens: set[str] = set()
        self.uploads: list[dict] = []
        self.ec2_calls: list[str] = []
        self.unauthorized = 0
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
                    return self._send(404)
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
    (upload,) = fake.uploads
    assert upload["key"] == f"runctl/demo/checkpoints/r1/{rec['checkpoint']}".encode()
    assert upload["x-amz-signature"] == SECRET.encode() and list(upload)[-1] == "file"
    assert upload["file"] == (ck / rec["checkpoint"]).read_bytes()
    log = (run / "log").read_text()
    assert f"[runctl guardian] spot interruption notice: {rec['checkpoint']} uploaded" in log
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
