"""The `runctl` shell front end against the sandbox: what stdout carries, Ctrl-C, `config show`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from itest_helpers import run_cli

pytestmark = pytest.mark.sandbox

SLOW_SCRIPT = """\
import time
for epoch in range(1, 121):
    print(f"epoch {epoch}/120 loss=0.5", flush=True)
    time.sleep(0.5)
"""


def test_create_prints_only_the_instance_id_on_stdout(sandbox):
    created = run_cli("--sandbox", "aws", "create", "t3.micro", "--wait")
    assert created.returncode == 0, created.stderr
    iid = created.stdout.strip()
    try:
        assert created.stdout == f"{iid}\n" and iid.startswith("i-")  # iid=$(runctl … create … --wait)
        assert "Created" in created.stderr and "ready for commands" in created.stderr
    finally:
        run_cli("--sandbox", "aws", "terminate", iid, "--force")


def test_ctrl_c_during_train_wait_detaches_and_exits_130(instance, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "ctrlc"\nversion = "0.1"\n')
    (tmp_path / "slow.py").write_text(SLOW_SCRIPT)
    proc = subprocess.Popen([sys.executable, "-m", "runctl_jupyter.cli", "--sandbox", "aws", "train", instance,
                             "slow.py", "--wait"], cwd=tmp_path, env=dict(os.environ), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until the log is being followed
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("epoch ") or not line:
                break
        assert any(s.startswith("epoch ") for s in seen), "".join(seen) + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Detached from run" in out and "Traceback" not in err
    # Ctrl-C never kills a training: the run goes on
    monitor = run_cli("--sandbox", "aws", "monitor", instance)
    assert monitor.returncode == 0 and ": running" in monitor.stderr


def test_config_show_under_sandbox_shows_effective_values(sandbox, tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0.1"\n')
    shown = run_cli("--sandbox", "config", "show", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = {line.split()[0]: line for line in shown.stdout.splitlines()}
    assert "us-east-1" in rows["region"] and "(sandbox)" in rows["region"]
    assert "runctl-sandbox" in rows["bucket"] and "None" not in rows["bucket"]
    assert tmp_path.name in rows["project"]
