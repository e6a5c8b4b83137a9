"""A failed code sync says its cause as a field (``sync_cause=``) and the user gets the steps for that
cause (issue 17 item 4: refusals as fields, not English stderr matched in Python). Each case runs the
real sync_apply.sh with bash on a fake instance disk."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

from runctl_jupyter import sync
from runctl_jupyter.remote import script_path
from runctl_jupyter.remote.replies import LaunchReply
from runctl_jupyter.training.launch import _sync_failure_steps

APPLY = script_path("sync_apply")


def _bundle(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _apply(tmp_path: Path, bundle: bytes | None) -> subprocess.CompletedProcess[str]:
    root = tmp_path / "instance"
    root.mkdir(exist_ok=True)
    path = tmp_path / "bundle.tar.gz"
    if bundle is not None:
        path.write_bytes(bundle)
    args = ["proj", path.as_uri()] + ([hashlib.sha256(bundle).hexdigest()] if bundle is not None else [])
    env = {**os.environ, "RUNCTL_ROOT": str(root)}
    return subprocess.run(["bash", APPLY, *args], capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)


def _steps(proc: subprocess.CompletedProcess[str]) -> tuple[str | None, list[str]]:
    cause = LaunchReply.parse(proc.stdout + "@runctl sync_failed=1\n").sync_cause
    return cause, [s.text for s in _sync_failure_steps(cause)]


def test_a_bundle_that_is_not_there_is_a_download_failure(tmp_path):
    proc = _apply(tmp_path, None)
    cause, steps = _steps(proc)
    assert proc.returncode != 0 and cause == "download"
    assert "bucket is reachable" in steps[0]


def test_an_unsafe_bundle_is_refused_with_its_own_steps(tmp_path):
    proc = _apply(tmp_path, _bundle({"/etc/evil": b"x"}))
    cause, steps = _steps(proc)
    assert proc.returncode == 3 and cause == "unsafe_bundle"
    assert "link leading outside" in steps[0] and not any("bucket" in s for s in steps)
    assert not (tmp_path / "instance" / "etc").exists()


def test_requirements_that_do_not_install_say_so(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text("print(1)\n")
    (project / "requirements.txt").write_text("this is === not a requirement\n")
    local = sync.collect_files(project)
    proc = _apply(tmp_path, sync.make_bundle(project, sync.plan(local, {}), local))
    cause, steps = _steps(proc)
    assert proc.returncode != 0 and cause == "requirements", proc.stderr
    assert "requirements.txt" in steps[0]
