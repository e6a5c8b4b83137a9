"""Stop and the checkpoint guard: what a stop of a training with workers costs, what a repeated listing
reads, and the largest SendCommand of a stop with 500 checkpoints (SSO-length presigned URLs).

1. ``api.stop(wait=True)`` of a training with 4 DataLoader-like worker processes (tests/data's stand-in,
   0.5 s to save its final checkpoint): wall time from the call until the instance is stopped.
2. ``checkpoints.sh`` over 1,000 checkpoint files of 64 KB, twice: bytes hashed (``hashed=``).
3. ``guard.upload_checkpoints`` of 500 checkpoints whose presigned URLs carry a 1 KB session token:
   SendCommands made and the largest one's size (AWS refuses more than 64 KB).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from types import SimpleNamespace

from .common import REPO, Bench, Metric

STANDIN = REPO / "tests" / "data" / "dataloader_standin.py"


def _stop_with_workers(bench: Bench) -> float:
    from runctl_jupyter import api, training

    project = bench.scratch / "stopproj"
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "stopproj"\nversion = "0.1.0"\n')
    shutil.copy(STANDIN, project / "standin.py")
    ctx = bench.context()
    iid = api.create(ctx, "t3.micro", wait=True, project="stopproj").instance_id
    try:
        launch = training.start_training(ctx, iid, project / "standin.py", ["4", "0.5"])
        log = bench.sandbox_dir / "instances" / iid / "runctl" / "stopproj" / "runs" / launch.run_id / "log"
        deadline = time.monotonic() + 60
        while "workers ready" not in (log.read_text() if log.exists() else ""):
            if time.monotonic() > deadline:
                raise RuntimeError("the stand-in's workers did not start")
            time.sleep(0.05)
        t = time.perf_counter()
        api.stop(ctx, iid, wait=True)
        return time.perf_counter() - t
    finally:
        api.terminate(ctx, iid, force=True)


def _hashed_bytes(bench: Bench) -> tuple[int, int]:
    from runctl_jupyter.remote import parse_fields, script_path

    root = bench.scratch / "hash-root"
    ck = root / "runctl" / "hashproj" / "checkpoints"
    ck.mkdir(parents=True, exist_ok=True)
    block = os.urandom(64 * 1024)
    for i in range(1000):
        (ck / f"checkpoint_{i:04d}.pt").write_bytes(block)
    env = {**os.environ, "RUNCTL_ROOT": str(root)}
    hashed = []
    for _ in range(2):
        total, start = 0, "0"
        while start is not None:  # page by page, as guard.list_checkpoints reads it
            out = subprocess.run(["bash", script_path("checkpoints"), "hashproj", start], env=env,
                                 capture_output=True, text=True, check=True).stdout
            page = parse_fields(out.splitlines()[-1])
            total += int(page["hashed"])
            start = page.get("next")
        hashed.append(total)
    return hashed[0], hashed[1]


def _largest_upload_command() -> tuple[int, int]:
    from runctl_jupyter import guard, remote
    from runctl_jupyter.aws import s3, ssm
    from runctl_jupyter.models import RemoteResult

    sizes: list[int] = []

    def run(_ctx, iid, script, args, env, stdin=None):
        sizes.append(ssm.command_bytes(remote.command_for(script, args, env, stdin=stdin)))
        return RemoteResult(instance_id=iid, command_id="c", status="Success", exit_code=0, stdout="", stderr="")

    saved = (s3.presign_put, guard.verify_copies, ssm.run, ssm.remote_root_env)
    s3.presign_put = lambda _ctx, bucket, key, _md5: (f"https://{bucket}.s3.us-east-1.amazonaws.com/{key}?X-Amz-Algorithm="
                                                f"AWS4-HMAC-SHA256&X-Amz-Security-Token={'T' * 1024}&"
                                                f"X-Amz-Signature={'a' * 64}")
    guard.verify_copies = lambda *_a: None
    ssm.run, ssm.remote_root_env = run, lambda _ctx: {"RUNCTL_ROOT": "/home/ec2-user"}
    try:
        checkpoints = [guard.Checkpoint(f"run-1/checkpoint_epoch_{i:04d}.pt", 1, "0" * 32, 1) for i in range(500)]
        guard.upload_checkpoints(SimpleNamespace(), "i-0123456789abcdef0", "proj", "r1", checkpoints, "bucket",
                                 lambda _line: None)
    finally:
        s3.presign_put, guard.verify_copies, ssm.run, ssm.remote_root_env = saved
    return len(sizes), max(sizes)


def _script_commands() -> tuple[int, int, int]:
    """The scripts' one-time install (commands, largest) and what a command carries once they are there."""
    from runctl_jupyter import remote
    from runctl_jupyter.aws import ssm

    installs = [ssm.command_bytes(c) for c in remote.install_commands()]
    status = ssm.command_bytes(remote.command_for("status", ["proj"], {"RUNCTL_ROOT": "/home/ec2-user"}))
    return len(installs), max(installs), status


def run(bench: Bench) -> list[Metric]:
    group = "stop and the checkpoint guard"
    stop_s = _stop_with_workers(bench)
    first, again = _hashed_bytes(bench)
    commands, largest = _largest_upload_command()
    installs, install_bytes, status_bytes = _script_commands()
    return [
        Metric("stop → instance stopped, training with 4 workers (sandbox)", stop_s, "s", group=group,
               note="includes the stand-in's 0.5 s save, the group's end, listing, upload, StopInstances"),
        Metric("bytes hashed, first listing of 1,000 × 64 KB checkpoints", first, "B", group=group),
        Metric("bytes hashed, repeated listing", again, "B", 0, op="==", group=group),
        Metric("SendCommands to upload 500 checkpoints (1 KB session token)", commands, "", group=group),
        Metric("largest of those SendCommands", largest, "B", 64 * 1024, group=group,
               anchor="AWS: 64 KB (was one ~650 KB command)"),
        Metric("SendCommands to install the scripts (once per instance and version)", installs, "", group=group),
        Metric("largest of those SendCommands", install_bytes, "B", 64 * 1024, group=group,
               anchor="the scripts travelled inline in every command: 74 KB launch refused"),
        Metric("a status SendCommand once the scripts are installed", status_bytes, "B", group=group),
    ]
