"""GPUs, as pure logic: nvidia-smi's query output read into :class:`~runctl_jupyter.models.GpuMetrics`,
and when a run is paying for an idle GPU. (Which GPUs a type has comes from DescribeInstanceTypes:
:func:`runctl_jupyter.aws.instance_types.describe_type`, one source for images, status and the cost table.)

The query is ``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits``: remote/gpu.sh
runs it in the same SSM command as the status read (status.sh) and prints each line after
``@runctl-gpu ``; the format is the real tool's (``../shared/reference/gpu/``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from datetime import datetime

from .models import GpuMetrics

QUERY_FIELDS = ("index", "name", "uuid", "utilization.gpu", "utilization.memory", "memory.used", "memory.total",
                "temperature.gpu", "power.draw")
LINE_PREFIX = "@runctl-gpu "
IDLE_GPU_AFTER_S = 600  # a run this old with every GPU at 0% is paying for an idle GPU

def _number(text: str) -> float | None:
    """nvidia-smi's value, or None for what it cannot say (``[N/A]``, ``[Not Supported]``, ``N/A``)."""
    try:
        return float(text)
    except ValueError:
        return None


def parse_query(lines: Iterable[str], fields: Sequence[str] = QUERY_FIELDS) -> list[GpuMetrics]:
    """nvidia-smi ``--format=csv,noheader,nounits`` lines (of ``fields``) → one GpuMetrics per GPU.
    A line that does not have every field (cut off) is left out."""
    gpus: list[GpuMetrics] = []
    for row in csv.reader((line for line in lines if line.strip()), skipinitialspace=True):
        if len(row) != len(fields):
            continue
        value = dict(zip(fields, (cell.strip() for cell in row), strict=True))
        index = _number(value.get("index", ""))
        gpus.append(GpuMetrics(
            index=int(index) if index is not None else len(gpus), name=value.get("name", "GPU"),
            uuid=value.get("uuid", ""), utilization_pct=_number(value.get("utilization.gpu", "")),
            memory_utilization_pct=_number(value.get("utilization.memory", "")),
            memory_used_mib=_number(value.get("memory.used", "")),
            memory_total_mib=_number(value.get("memory.total", "")),
            temperature_c=_number(value.get("temperature.gpu", "")), power_w=_number(value.get("power.draw", ""))))
    return gpus


def gpu_lines(stdout: str) -> list[str]:
    """The nvidia-smi lines a status reply carries (after ``@runctl-gpu ``)."""
    return [line[len(LINE_PREFIX):] for line in stdout.splitlines() if line.startswith(LINE_PREFIX)]


def idle_warning(run_id: str | None, state: str, started: datetime | None, now: datetime,
                 gpus: Sequence[GpuMetrics]) -> str | None:
    """The warning for a run older than IDLE_GPU_AFTER_S whose every GPU shows 0% utilisation."""
    if state != "running" or started is None or not gpus:
        return None
    if any(g.utilization_pct is None or g.utilization_pct > 0 for g in gpus):
        return None
    age = (now - started).total_seconds()
    if age < IDLE_GPU_AFTER_S:
        return None
    every = "the GPU shows" if len(gpus) == 1 else f"all {len(gpus)} GPUs show"
    return (f"paying for an idle GPU: run {run_id or '?'} has run {int(age // 60)} min and {every} 0% "
            "utilisation (does the script put its model on CUDA?)")
