"""Which Python a training runs with (python_env.sh) and torchrun under launch.sh / stop.sh, run with
bash against a fake Deep Learning AMI layout: interpreters under a temp folder, found through
RUNCTL_DLAMI_PYTHONS (tests never need root paths), a stand-in torch package and torchrun."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from runctl_jupyter.training.runs import STOP_SIGNAL_LINE, run_state

DATA = Path(__file__).resolve().parents[1] / "data"
FAKE_TORCH = DATA / "fake_torch" / "torch"
WORKER = DATA / "torchrun_worker.py"
WHICH = "import os, sys\nprint('image=' + os.environ.get('FAKE_IMAGE', '-') + ' exe=' + sys.executable)\n"


def fake_interpreter(path: Path, marker: str) -> Path:
    """An executable at ``path`` that runs this interpreter, marking the process as the image's ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nFAKE_IMAGE={marker} exec {sys.executable} \"$@\"\n")
    path.chmod(0o755)
    return path


def detect(extra: dict[str, str]) -> dict[str, str]:
    """No `python` setting: launch.sh chooses (the fixture's RUNCTL_PYTHON is the setting's layer)."""
    return {"RUNCTL_PYTHON": "", **extra}


def test_the_image_python_is_found_once_then_read_from_the_cache(inst, tmp_path):
    pytorch = fake_interpreter(tmp_path / "opt/pytorch/bin/python", "pytorch")
    conda = fake_interpreter(tmp_path / "opt/conda/envs/pytorch/bin/python", "conda")
    (inst.code / "which.py").write_text(WHICH)
    search = f"{tmp_path}/absent/bin/python {pytorch} {conda}"

    r = inst.run("launch", inst.project, "d1", "which.py", env=detect({"RUNCTL_DLAMI_PYTHONS": search}))
    assert r.returncode == 0, r.stderr
    f = inst.fields(r.stdout)
    assert (f["python"], f["python_source"]) == (str(pytorch), "image")
    assert inst.wait_done("d1") == 0 and "image=pytorch" in inst.log("d1")
    assert (inst.runctl / "python").read_text() == f"{pytorch}\nimage\n"  # the instance's cache
    assert json.loads((inst.run_dir("d1") / "meta.json").read_text())["python"] == str(pytorch)
    assert inst.fields(inst.run("status", inst.project).stdout)["python"] == str(pytorch)

    # cached: another search list finds it again, without looking
    r = inst.run("launch", inst.project, "d2", "which.py", env=detect({"RUNCTL_DLAMI_PYTHONS": str(conda)}))
    assert inst.fields(r.stdout)["python"] == str(pytorch) and inst.wait_done("d2") == 0
    # an interpreter that went away is detected again
    shutil.rmtree(tmp_path / "opt/pytorch")
    r = inst.run("launch", inst.project, "d3", "which.py", env=detect({"RUNCTL_DLAMI_PYTHONS": search}))
    assert inst.fields(r.stdout)["python"] == str(conda) and inst.wait_done("d3") == 0
    assert "image=conda" in inst.log("d3")
    # the `python` setting wins over what was detected
    r = inst.run("launch", inst.project, "d4", "which.py", env={"RUNCTL_DLAMI_PYTHONS": search})
    f = inst.fields(r.stdout)
    assert (f["python"], f["python_source"]) == (sys.executable, "setting") and inst.wait_done("d4") == 0
    assert "image=-" in inst.log("d4")


def test_without_an_image_environment_the_system_python3_runs(make_inst, tmp_path):
    inst = make_inst("plain")
    bin_dir = tmp_path / "usr-bin"
    python3 = fake_interpreter(bin_dir / "python3", "system")
    (inst.code / "which.py").write_text(WHICH)
    env = detect({"RUNCTL_DLAMI_PYTHONS": f"{tmp_path}/opt/pytorch/bin/python",
                  "PATH": f"{bin_dir}:/usr/bin:/bin"})
    r = inst.run("launch", inst.project, "s1", "which.py", env=env)
    f = inst.fields(r.stdout)
    assert (f["python"], f["python_source"]) == (str(python3), "system"), r.stderr
    assert inst.wait_done("s1") == 0 and "image=system" in inst.log("s1")


def _image_with_torch(root: Path) -> Path:
    """A Deep Learning AMI's PyTorch environment: a venv holding (a stand-in) torch 2.11, installed."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = Path(subprocess.run([str(root / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    shutil.copytree(FAKE_TORCH, site / "torch")
    info = site / "torch-2.11.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.11.0\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("")
    return root / "bin" / "python"


def test_the_project_venv_is_built_on_the_image_python_and_uses_its_torch(inst, tmp_path):
    image_python = _image_with_torch(tmp_path / "opt" / "pytorch")
    (inst.code / "requirements.txt").write_text("torch  # the image has it\n")
    (inst.code / "where.py").write_text("import sys, torch\nprint('torch from ' + torch.__file__)\n"
                                        "print('exe ' + sys.executable)\n")
    env = detect({"RUNCTL_DLAMI_PYTHONS": str(image_python), "PIP_NO_INDEX": "1"})
    r = inst.run("launch", inst.project, "v1", "where.py", env=env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    f = inst.fields(r.stdout)
    venv = inst.project_dir() / "venv"
    assert f["requirements"] == "installed"
    assert f["torch_warning"] == "torch" and f["python_base"] == str(image_python)  # said, not refused
    assert (f["python"], f["python_source"]) == (str(venv / "bin/python"), "venv")
    assert (venv / ".runctl-base").read_text() == f"{image_python}\n"
    assert inst.wait_done("v1") == 0
    log = inst.log("v1")
    # the image's torch: pip found it installed (nothing downloaded), the training imported it from there
    assert "Requirement already satisfied: torch" in log
    assert f"torch from {tmp_path / 'opt' / 'pytorch'}" in log and f"exe {venv / 'bin/python'}" in log
    assert "requirements.txt names torch, but" in log

    # the next run finds the venv ready: no venv step, no pip
    r = inst.run("launch", inst.project, "v2", "where.py", env=env)
    f = inst.fields(r.stdout)
    assert "requirements" not in f and f["python_source"] == "venv" and inst.wait_done("v2") == 0


def _torch_project(inst) -> None:
    shutil.copytree(FAKE_TORCH, inst.code / "torch")
    shutil.copy(WORKER, inst.code / "worker.py")


def test_torchrun_command_line_with_one_process_per_gpu(inst, tmp_path):
    _torch_project(inst)
    bin_dir = tmp_path / "driver"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"  # an instance with 3 GPUs
    smi.write_text("#!/bin/sh\n[ \"$1\" = --query-gpu=index ] || exit 2\nprintf '0\\n1\\n2\\n'\n")
    smi.chmod(0o755)
    env = {"RUNCTL_TORCHRUN": "gpu", "PATH": f"{bin_dir}:/usr/bin:/bin"}
    r = inst.run("launch", inst.project, "t1", "worker.py", "--lr", "0.1", "--exit", env=env)
    assert r.returncode == 0, r.stderr
    f = inst.fields(r.stdout)
    assert f["nproc"] == "3"
    assert inst.wait_done("t1") == 0
    log = inst.log("t1")
    argv = json.loads(next(line for line in log.splitlines() if line.startswith("torchrun argv: "))[15:])
    assert argv == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=3",
                    "worker.py", "--lr", "0.1", "--exit"]
    for rank in range(3):  # torchrun (the training's own process, the wrapper's child) started them
        assert f"rank {rank} of 3 ready" in log and f"parent {f['pid']} args ['--lr', '0.1', '--exit']" in log
    meta = json.loads((inst.run_dir("t1") / "meta.json").read_text())
    assert meta["nproc_per_node"] == 3


def test_torchrun_refusals_give_the_claim_back(inst):
    (inst.code / "plain.py").write_text("print('hi')\n")
    r = inst.run("launch", inst.project, "n1", "plain.py", env={"RUNCTL_TORCHRUN": "gpu", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and inst.fields(r.stdout)["refused"] == "no_gpu", r.stdout + r.stderr
    r = inst.run("launch", inst.project, "n2", "plain.py", env={"RUNCTL_TORCHRUN": "2"})
    assert r.returncode == 2 and inst.fields(r.stdout)["refused"] == "no_torch", r.stdout + r.stderr
    r = inst.run("launch", inst.project, "n3", "plain.py", env={"RUNCTL_TORCHRUN": "two"})
    assert r.returncode == 2 and "invalid RUNCTL_TORCHRUN" in r.stderr and r.stdout == ""
    assert not inst.lock.exists() and not (inst.project_dir() / "runs").exists()


def test_stop_signals_torchrun_which_passes_one_sigterm_to_each_worker(inst):
    _torch_project(inst)
    r = inst.run("launch", inst.project, "t2", "worker.py", env={"RUNCTL_TORCHRUN": "2"})
    assert r.returncode == 0, r.stderr
    torchrun = inst.fields(r.stdout)["pid"]
    inst.wait_for(lambda: inst.log("t2").count(" ready: ") == 2, 20, what="both workers")

    stop = inst.run("stop", inst.project, "20")
    head = inst.line_fields(stop.stdout)[0]
    assert head["stopped"] == "1" and head["pid"] == torchrun and head["exit_code"] == "0", inst.log("t2")
    assert "killed" not in head and "still_running" not in head
    log = inst.log("t2")
    for rank in range(2):  # exactly one SIGTERM each, sent by torchrun (not by stop.sh, not to the group)
        assert f"rank {rank} SIGTERM from {torchrun}\n" in log and f"rank {rank} saved after 1 SIGTERM(s)" in log
    assert STOP_SIGNAL_LINE in log and run_state(0, log) == "stopped"
    assert sorted(p.name for p in inst.checkpoints().iterdir()) == ["rank0.pt", "rank1.pt"]
    st = inst.fields(inst.run("status", inst.project).stdout)
    assert st["state"] == "exited" and st["stopped"] == "1" and not inst.lock.exists()
