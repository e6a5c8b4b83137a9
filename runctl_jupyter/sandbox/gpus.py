"""The GPUs of the sandbox's GPU instances: which types have them (moto's DescribeInstanceTypes data,
``GpuInfo``), what each reports, and the ``nvidia-smi`` their commands find on the PATH.

A GPU type's commands run with ``DIR/bin/gpu`` on their PATH (its ``nvidia-smi`` runs
:mod:`.nvidia_smi`); other types have no nvidia-smi, as an instance without NVIDIA GPUs has none.
Each GPU instance's numbers live in ``DIR/gpus/<iid>.json``: an idle GPU until a test sets them
(``control.set_gpus``: utilisation, memory used, temperature, power).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import threading
from pathlib import Path
from typing import Any

from . import moto_seams
from .world import World

DRIVER, CUDA = "580.159.04", "13.0"  # as on the captured H200 (../shared/reference/gpu/)
# AWS's GPU name (DescribeInstanceTypes) → what nvidia-smi calls it, its memory.total (MiB) and power limit (W)
NVIDIA = {
    ("H200", 144384): ("NVIDIA H200", 143771, 700),
    ("H100", 81920): ("NVIDIA H100 80GB HBM3", 81559, 700),
    ("A100", 40960): ("NVIDIA A100-SXM4-40GB", 40960, 400),
    ("A100", 81920): ("NVIDIA A100-SXM4-80GB", 81920, 400),
    ("A10G", 22888): ("NVIDIA A10G", 23028, 300),
    ("L4", 22888): ("NVIDIA L4", 23034, 72),
    ("L40S", 45776): ("NVIDIA L40S", 46068, 350),
    ("T4", 16384): ("Tesla T4", 15360, 70),
    ("T4g", 16384): ("NVIDIA T4G", 15360, 70),
    ("V100", 16384): ("Tesla V100-SXM2-16GB", 16384, 300),
    ("V100", 32768): ("Tesla V100-SXM2-32GB", 32768, 300),
    ("B200", 183359): ("NVIDIA B200", 183359, 1000),
}
# what a test may set, per GPU (one value for every GPU, or a list with one per GPU)
SETTABLE = {"utilization": "utilization_gpu", "memory_utilization": "utilization_memory",
            "memory_used_mib": "memory_used", "temperature": "temperature", "power_watts": "power"}
_LOCK = threading.Lock()


def bin_dir(world: World) -> Path:
    return world.bin_dir / "gpu"


def state_path(world: World, iid: str) -> Path:
    return world.root / "gpus" / f"{iid}.json"


def write_nvidia_smi(world: World) -> None:
    """``DIR/bin/gpu/nvidia-smi``: the fake, run by the notebook side's base interpreter (standard library)."""
    folder = bin_dir(world)
    folder.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", "") or sys.executable
    script = Path(__file__).with_name("nvidia_smi.py")
    wrapper = folder / "nvidia-smi"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(base)} -S -s {shlex.quote(str(script))} "$@"\n')
    wrapper.chmod(0o755)


def _fresh(iid: str, instance_type: str) -> dict[str, Any] | None:
    info = moto_seams.gpu_info(instance_type)
    if not info or not info.get("Gpus"):
        return None
    spec = info["Gpus"][0]
    if spec.get("Manufacturer") != "NVIDIA":
        return None  # AMD / Habana / Inferentia: no nvidia-smi there
    aws_name, mib = str(spec.get("Name", "GPU")), int(spec.get("MemoryInfo", {}).get("SizeInMiB", 0))
    name, total, limit = NVIDIA.get((aws_name, mib), (f"NVIDIA {aws_name}", mib, 300))
    gpus = []
    for index in range(int(spec.get("Count", 1))):
        h = hashlib.sha256(f"{iid}/{index}".encode()).hexdigest()
        gpus.append({"index": index, "name": name, "memory_total": total, "memory_used": 0,
                     "utilization_gpu": 0, "utilization_memory": 0, "temperature": 35, "power": 78.31,
                     "power_limit": limit, "bus_id": f"00000000:00:{6 + index:02X}.0",
                     "uuid": f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"})
    return {"instance_type": instance_type, "driver": DRIVER, "cuda": CUDA, "gpus": gpus}


def _write(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def prepare(world: World, iid: str, instance_type: str) -> Path | None:
    """The instance's GPU state file (made idle on first use; kept across stop/start), or None for
    a type without NVIDIA GPUs. Call with the moto lock held (reads moto's instance-type data)."""
    path = state_path(world, iid)
    with _LOCK:
        try:
            current = json.loads(path.read_text())
        except (OSError, ValueError):
            current = None
        if current is not None and current.get("instance_type") == instance_type:
            return path
        state = _fresh(iid, instance_type)
        if state is None:
            path.unlink(missing_ok=True)
            return None
        _write(path, state)
        return path


def set_metrics(world: World, iid: str, instance_type: str, values: dict[str, Any]) -> dict[str, Any]:
    """Set what the instance's GPUs report (``SETTABLE`` keys); returns the new state."""
    unknown = sorted(set(values) - set(SETTABLE))
    if unknown:
        raise ValueError(f"unknown GPU value(s) {', '.join(unknown)} (known: {', '.join(SETTABLE)})")
    path = prepare(world, iid, instance_type)
    if path is None:
        raise LookupError(f"{iid} is a {instance_type}: it has no NVIDIA GPU")
    with _LOCK:
        state = json.loads(path.read_text())
        gpus = state["gpus"]
        for key, value in values.items():
            per_gpu = list(value) if isinstance(value, list | tuple) else [value] * len(gpus)
            if len(per_gpu) != len(gpus):
                raise ValueError(f"{key}: {len(per_gpu)} values for {len(gpus)} GPU(s)")
            for gpu, item in zip(gpus, per_gpu, strict=True):
                number = float(item)
                if number < 0 or (key in ("utilization", "memory_utilization") and number > 100):
                    raise ValueError(f"{key}={item!r} is out of range")
                if key == "memory_used_mib" and number > gpu["memory_total"]:
                    raise ValueError(f"memory_used_mib={item!r} is more than the GPU has ({gpu['memory_total']})")
                gpu[SETTABLE[key]] = number if key == "power_watts" else int(number)
        _write(path, state)
        return state
