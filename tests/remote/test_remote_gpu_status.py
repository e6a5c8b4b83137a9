"""status.sh reads the GPUs in the same command (gpu.sh): nvidia-smi's own CSV lines, or why there are
none. The nvidia-smi here is the sandbox's (it prints the real H200 capture's format)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from runctl_jupyter.remote.replies import StatusReply
from runctl_jupyter.sandbox import nvidia_smi

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "gpu"
STATE = {"instance_type": "p5e.48xlarge", "driver": "580.159.04", "cuda": "13.0", "gpus": [
    {"index": 0, "name": "NVIDIA H200", "uuid": "GPU-62895793-7568-4424-20ce-02826845eb1b", "utilization_gpu": 0,
     "utilization_memory": 0, "memory_used": 0, "memory_total": 143771, "temperature": 35, "power": 78.31,
     "power_limit": 700, "bus_id": "00000000:00:06.0"}]}


def _driver(tmp_path: Path, body: str | None = None) -> dict[str, str]:
    """A PATH whose nvidia-smi is the sandbox's (or ``body``), and its GPUs' state."""
    bin_dir = tmp_path / "driver"
    bin_dir.mkdir(exist_ok=True)
    state = tmp_path / "gpus.json"
    state.write_text(json.dumps(STATE))
    smi = bin_dir / "nvidia-smi"
    smi.write_text(body or f'#!/bin/sh\nexec {sys.executable} -S -s {nvidia_smi.__file__} "$@"\n')
    smi.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "RUNCTL_SANDBOX_GPUS": str(state)}


def test_status_appends_nvidia_smis_lines(inst, tmp_path):
    r = inst.run("status", inst.project, env=_driver(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("@runctl project=demo ") and "state=none" in lines[0]
    assert lines[1:] == ["@runctl-gpu " + (CAPTURES / "nvidia-smi-query-gpu-h200.csv").read_text().rstrip("\n"),
                         "@runctl nvidia_smi=ok gpus=1"]
    [gpu] = StatusReply.parse(r.stdout).gpus
    assert (gpu.name, gpu.utilization_pct, gpu.memory_total_mib, gpu.power_w) == ("NVIDIA H200", 0, 143771, 78.31)


def test_status_without_a_driver_or_with_a_broken_one(inst, tmp_path):
    assert shutil.which("nvidia-smi", path="/usr/bin:/bin") is None
    r = inst.run("status", inst.project, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.stdout.splitlines()[1:] == ["@runctl nvidia_smi=missing"]
    broken = "#!/bin/sh\necho \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"\nexit 9\n"
    r = inst.run("status", inst.project, env=_driver(tmp_path, broken))
    reply = StatusReply.parse(r.stdout)
    assert r.returncode == 0 and reply.nvidia_smi == "failed" and reply.gpus == ()
    assert reply.gpu_error.startswith("NVIDIA-SMI has failed because it couldn't communicate")
