"""GPU metrics against the real H200 captures (../shared/reference/gpu/, copied to tests/data/gpu/):
nvidia-smi's query lines read into GpuMetrics, the sandbox's nvidia-smi printing exactly the real
formats, the idle-GPU warning, the GPU column's types, and the train flags (--python, --torchrun)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runctl_jupyter import gpus, grammar
from runctl_jupyter.errors import UsageError
from runctl_jupyter.models import GpuMetrics, Instance, gpus_compact
from runctl_jupyter.remote import script_text
from runctl_jupyter.remote.replies import StatusReply
from runctl_jupyter.sandbox import nvidia_smi

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "gpu"
QUERY_CSV = (CAPTURES / "nvidia-smi-query-gpu-h200.csv").read_text()
TABLE = (CAPTURES / "nvidia-smi-h200.txt").read_text()
IID = "i-0123456789abcdef0"
H200_STATE = {"instance_type": "p5e.48xlarge", "driver": "580.159.04", "cuda": "13.0", "gpus": [
    {"index": 0, "name": "NVIDIA H200", "uuid": "GPU-62895793-7568-4424-20ce-02826845eb1b", "utilization_gpu": 0,
     "utilization_memory": 0, "memory_used": 0, "memory_total": 143771, "temperature": 35, "power": 78.31,
     "power_limit": 700, "bus_id": "00000000:00:06.0"}]}


def test_the_query_is_the_captured_one_and_gpu_sh_asks_for_it():
    readme = (CAPTURES / "README.md").read_text()
    asked = re.search(r"--query-gpu=([a-z_.,]+) --format=csv,noheader,nounits", readme).group(1)
    assert tuple(asked.split(",")) == gpus.QUERY_FIELDS
    assert f'GPU_FIELDS="{",".join(gpus.QUERY_FIELDS)}"' in script_text("gpu")


def test_the_real_h200_line_is_read():
    [gpu] = gpus.parse_query(QUERY_CSV.splitlines())
    assert gpu == GpuMetrics(index=0, name="NVIDIA H200", utilization_pct=0.0, memory_used_mib=0.0,
                             memory_total_mib=143771.0, uuid="GPU-62895793-7568-4424-20ce-02826845eb1b",
                             memory_utilization_pct=0.0, temperature_c=35.0, power_w=78.31)
    assert gpu.short_name == "H200" and gpu.line() == "GPU 0: NVIDIA H200  0%  0.0/140.4 GiB"


def test_values_nvidia_smi_cannot_give_and_cut_lines():
    lines = ["0, Tesla T4, GPU-a, 97, 40, 12000, 15360, 61, [N/A]",
             "1, Tesla T4, GPU-b, [Not Supported], 0, 0, 15360, 30, 27.5",
             "2, Tesla T4, GPU-c, 5"]  # cut off by SSM's limit: left out
    t4a, t4b = gpus.parse_query(lines)
    assert (t4a.utilization_pct, t4a.power_w, t4b.utilization_pct) == (97.0, None, None)
    assert t4b.line() == "GPU 1: Tesla T4  ?%  0.0/15.0 GiB"
    assert gpus_compact([t4a, t4b]) == "2× T4 avg 97% 11.7/30.0 GiB"


def test_the_status_reply_carries_the_gpus_of_the_same_command():
    stdout = ("@runctl project=demo run_id=r1 state=running pid=42 started=2026-11-30T10:00:00Z python=%2Fopt%2Fpytorch%2Fbin%2Fpython\n"
              f"@runctl-gpu {QUERY_CSV}@runctl nvidia_smi=ok gpus=1\n")
    reply = StatusReply.parse(stdout)
    assert reply.state == "running" and reply.run_id == "r1" and reply.python == "/opt/pytorch/bin/python"
    assert reply.started == datetime(2026, 11, 30, 10, tzinfo=UTC) and reply.nvidia_smi == "ok"
    assert [g.name for g in reply.gpus] == ["NVIDIA H200"] and reply.pid == 42


@pytest.fixture()
def fake_smi(tmp_path, monkeypatch):
    path = tmp_path / "gpus.json"
    path.write_text(json.dumps(H200_STATE))
    monkeypatch.setenv("RUNCTL_SANDBOX_GPUS", str(path))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-S", "-s", nvidia_smi.__file__, *args], capture_output=True,
                              text=True, env={"RUNCTL_SANDBOX_GPUS": str(path)})
    run.path = path  # type: ignore[attr-defined]
    return run


def test_the_sandbox_nvidia_smi_prints_the_real_formats(fake_smi):
    query = "--query-gpu=" + ",".join(gpus.QUERY_FIELDS)
    assert fake_smi(query, "--format=csv,noheader,nounits").stdout == QUERY_CSV
    with_units = fake_smi("--query-gpu=index,name,utilization.gpu,memory.used,power.draw", "--format=csv").stdout
    assert with_units == ("index, name, utilization.gpu [%], memory.used [MiB], power.draw [W]\n"
                          "0, NVIDIA H200, 0 %, 0 MiB, 78.31 W\n")
    table = fake_smi().stdout.splitlines()
    assert table[1:] == TABLE.splitlines()[1:]  # all but the date
    assert re.fullmatch(r"\w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4} {7}", table[0])
    assert fake_smi("--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits").stdout == ""
    assert fake_smi("-L").stdout == "GPU 0: NVIDIA H200 (UUID: GPU-62895793-7568-4424-20ce-02826845eb1b)\n"
    bad = fake_smi("--query-gpu=index,flux", "--format=csv")
    assert bad.returncode == 2 and bad.stdout.startswith('Field "flux" is not a valid field to query.')


def test_the_numbers_a_test_sets_come_out(fake_smi):
    state = json.loads(fake_smi.path.read_text())
    state["gpus"][0].update(utilization_gpu=97, memory_used=70123, power=512.4)
    fake_smi.path.write_text(json.dumps(state))
    out = fake_smi("--query-gpu=utilization.gpu,memory.used,power.draw", "--format=csv,noheader,nounits").stdout
    assert out == "97, 70123, 512.40\n"


def _gpu(util: float | None) -> GpuMetrics:
    return GpuMetrics(0, "NVIDIA H200", util, 0, 143771)


@pytest.mark.parametrize(("state", "minutes", "utils", "warned"), [
    ("running", 11, [0], True), ("running", 11, [0, 0, 0, 0], True), ("running", 9, [0], False),
    ("running", 60, [0, 3], False), ("running", 60, [None], False), ("exited", 60, [0], False),
    ("running", 60, [], False)])
def test_the_idle_gpu_warning(state, minutes, utils, warned):
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    text = gpus.idle_warning("r1", state, now - timedelta(minutes=minutes), now, [_gpu(u) for u in utils])
    assert (text is not None) == warned
    if warned:
        assert text.startswith(f"paying for an idle GPU: run r1 has run {minutes} min")


def test_the_status_summary_shows_each_gpu_and_the_warning():
    inst = Instance(IID, "p5e.48xlarge", "running", "us-east-1", gpus=[_gpu(0)],
                    warnings=["paying for an idle GPU: run r1 has run 12 min and the GPU shows 0% utilisation "
                              "(does the script put its model on CUDA?)"])
    lines = inst.summary().splitlines()
    assert "  GPU 0: NVIDIA H200  0%  0.0/140.4 GiB" in lines
    assert lines[-1].startswith("  warning: paying for an idle GPU: run r1 has run 12 min")
    plain = Instance(IID, "g5.xlarge", "running", "us-east-1", gpu_note="no NVIDIA driver on this image")
    assert "  GPU: no NVIDIA driver on this image" in plain.summary().splitlines()


@pytest.mark.parametrize(("entry", "text"), [
    ({"InstanceType": "g5.12xlarge", "GpuInfo": {"Gpus": [{"Name": "A10G", "Manufacturer": "NVIDIA", "Count": 4,
                                                           "MemoryInfo": {"SizeInMiB": 24576}}]}}, "4× A10G"),
    ({"InstanceType": "p5e.48xlarge", "GpuInfo": {"Gpus": [{"Name": "H200", "Manufacturer": "NVIDIA", "Count": 8,
                                                            "MemoryInfo": {"SizeInMiB": 144384}}]}}, "8× H200"),
    ({"InstanceType": "t3.micro"}, None),
    ({"InstanceType": "inf2.xlarge", "NeuronInfo": {"NeuronDevices": [{"Count": 1, "Name": "Inferentia2"}]}}, None),
])
def test_the_cost_table_names_a_types_nvidia_gpus_from_describe_instance_types(entry, text):
    from runctl_jupyter.aws.instance_types import facts_from_api

    assert facts_from_api(entry).gpus_short() == text


def test_train_flags_for_the_python_and_torchrun():
    c = grammar.parse(["aws", "train", IID, "train.py", "--torchrun", "--python", "/opt/pytorch/bin/python",
                       "--", "--nproc-per-node", "9"])
    assert (c.torchrun, c.nproc_per_node, c.python) == (True, None, "/opt/pytorch/bin/python")
    assert c.script_args == ["--nproc-per-node", "9"]  # the script's own, after --
    assert grammar.parse(["train", IID, "t.py", "--torchrun", "--nproc-per-node", "gpu"]).nproc_per_node == "gpu"
    assert grammar.parse(["train", IID, "t.py", "--torchrun", "--nproc-per-node", "8"]).nproc_per_node == "8"
    assert grammar.parse(["train", IID, "t.py", "--python", "python3.12"]).python == "python3.12"
    with pytest.raises(UsageError) as err:
        grammar.parse(["train", IID, "t.py", "--nproc-per-node", "4"])
    assert err.value.steps[0].command == f"aws train {IID} t.py --torchrun --nproc-per-node 4"
    for bad in (["--nproc-per-node", "0"], ["--nproc-per-node", "many"], ["--python", "bash"],
                ["--python", "/opt/my python"], ["--torchrun=yes"], ["--nproc", "2"]):
        with pytest.raises(UsageError):
            grammar.parse(["train", IID, "t.py", "--torchrun", *bad])
    assert "--nproc-per-node N|gpu" in grammar.help_text(["aws", "train"])
