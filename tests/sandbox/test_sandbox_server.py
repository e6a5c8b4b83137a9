"""Starting, attaching, stopping; what the control client imports; the public AMI parameter."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sandbox_helpers import AL2023, Sandbox, pid_alive

from runctl_jupyter.errors import BackendError, SandboxNotRunning
from runctl_jupyter.sandbox import control

pytestmark = pytest.mark.sandbox


def test_control_client_imports_neither_moto_nor_boto3() -> None:
    code = ("import sys, runctl_jupyter.sandbox.control as c; "
            "print(any(m.split('.')[0] in ('moto', 'boto3', 'botocore') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_al2023_parameter_names_an_image_that_exists(sb: Sandbox) -> None:
    ami = sb.ami()
    images = sb.client("ec2").describe_images(ImageIds=[ami])["Images"]
    assert [i["ImageId"] for i in images] == [ami]
    assert sb.client("ssm").get_parameter(Name=AL2023)["Parameter"]["Value"] == ami


def test_concurrent_starts_spawn_one_server_and_stop_ends_everything(tmp_path: Path) -> None:
    results: list[control.SandboxInfo] = []
    threads = [threading.Thread(target=lambda: results.append(control.start(tmp_path))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3 and len({r.pid for r in results}) == 1
    info = results[0]
    try:
        box = Sandbox(info)
        iid = box.launch()
        pid = int(box.run(iid, "setsid nohup sleep 1000 >/dev/null 2>&1 & echo $!")["StandardOutputContent"])
        assert pid_alive(pid)
    finally:
        assert control.stop(tmp_path) is True
    assert not pid_alive(pid) and not pid_alive(info.pid)
    assert not (tmp_path / "server.json").exists()
    assert control.status(tmp_path) is None
    assert control.stop(tmp_path) is False
    with pytest.raises(SandboxNotRunning):
        control.snapshot(info)


def test_fresh_start_gives_a_clean_world(tmp_path: Path) -> None:
    first = control.start(tmp_path)
    stale_disk = tmp_path / "instances" / "i-0123456789abcdef0"
    stale_disk.mkdir(parents=True)
    (stale_disk / "checkpoint.pt").write_bytes(b"old")
    try:
        second = control.start(tmp_path, fresh=True)
        assert second.pid != first.pid and not pid_alive(first.pid)
        assert not stale_disk.exists()
        assert control.status(tmp_path) == second
    finally:
        control.stop(tmp_path)


def test_fresh_start_refuses_to_wipe_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(BackendError):
        control.start(tmp_path, fresh=True)
    assert (tmp_path / "thesis.tex").read_text() == "precious"
