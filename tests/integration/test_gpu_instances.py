"""A GPU instance in the sandbox: its nvidia-smi (numbers set by the test) read by `aws status` in the
status read's SSM command, the idle-GPU warning, the cost table's GPU column, the interpreter named in
the run's summary, and torchrun with one process per GPU stopped through torchrun."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from itest_helpers import REPO
from sandbox_env import make_project

from runctl_jupyter import api
from runctl_jupyter.sandbox import control

DATA = REPO / "tests" / "data"


def _wait_until(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_status_shows_each_gpu_and_warns_about_an_idle_one(ctx, sandbox, tmp_path):
    iid = api.create(ctx, "g5.xlarge", wait=True, project="gpu").instance_id
    info = control.status(sandbox.directory)
    try:
        inst = api.status(ctx, iid)
        assert [g.line() for g in inst.gpus] == ["GPU 0: NVIDIA A10G  0%  0.0/22.5 GiB"] and not inst.warnings
        api.sandbox_gpus(iid, utilization=87, memory_used_mib=20480)
        assert "  GPU 0: NVIDIA A10G  87%  20.0/22.5 GiB" in api.status(ctx, iid).summary().splitlines()

        said: list[str] = []
        script = make_project(tmp_path / "proj", "gpu")
        launch = api.train(ctx, iid, script, ["--epochs", "500", "--sleep", "1"], project="gpu", echo=said.append)
        started = next(line for line in said if "Started run" in line)
        assert f"; python {launch.python}" in started and "(the system python3)" in launch.python, said
        api.sandbox_gpus(iid, utilization=0)
        assert api.status(ctx, iid).warnings == []  # a run of a few seconds: not yet
        api.sandbox_clock(advance=11 * 60)
        warnings = api.status(ctx, iid).warnings
        assert len(warnings) == 1 and warnings[0].startswith(f"paying for an idle GPU: run {launch.run_id} has run 11 min")
        api.sandbox_gpus(iid, utilization=35)
        assert api.status(ctx, iid).warnings == []

        rows = api.resources(ctx, project="gpu")
        assert rows.loc[rows.instance_id == iid, "gpu"].tolist() == ["1× A10G"]  # from the type: no SSM call
    finally:
        control.unfreeze_clock(info, reset=True)
        api.terminate(ctx, iid, force=True)


def test_torchrun_one_process_per_gpu_is_stopped_through_torchrun(ctx, sandbox, tmp_path):
    iid = api.create(ctx, "g5.12xlarge", wait=True, project="ddp").instance_id
    try:
        project = tmp_path / "ddp"
        make_project(project, "ddp")
        shutil.copytree(DATA / "fake_torch" / "torch", project / "torch")
        shutil.copy(DATA / "torchrun_worker.py", project / "worker.py")
        said: list[str] = []
        launch = api.train(ctx, iid, project / "worker.py", project="ddp", torchrun=True, echo=said.append)
        assert any("torchrun × 4" in line for line in said), said  # g5.12xlarge: 4 GPUs, from nvidia-smi
        log = Path(sandbox.directory) / "instances" / iid / "runctl" / "ddp" / "runs" / launch.run_id / "log"
        _wait_until(lambda: log.read_text().count(" ready: ") == 4)

        api.stop(ctx, iid, wait=True)
        text = log.read_text()
        for rank in range(4):
            assert f"rank {rank} SIGTERM from {launch.pid}\n" in text and f"rank {rank} saved after 1 SIGTERM(s)" in text, text
        assert "[runctl] received SIGTERM (stop requested)" in text and "[runctl] exit code 0" in text
    finally:
        api.terminate(ctx, iid, force=True)
