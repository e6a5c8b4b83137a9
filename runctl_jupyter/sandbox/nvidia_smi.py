"""The sandbox's ``nvidia-smi``: what a GPU instance's NVIDIA driver prints, in the real tool's formats
(``../shared/reference/gpu/``: an H200 with driver 580), with numbers a test sets.

Run as a script (standard library only) by the ``nvidia-smi`` the sandbox puts on a GPU instance's
PATH; it reads the instance's GPUs from the JSON file named by ``RUNCTL_SANDBOX_GPUS`` (written by
:mod:`.gpus`). Answers ``--query-gpu=FIELDS --format=csv[,noheader][,nounits]``,
``--query-compute-apps=…`` (no process uses a sandbox GPU: nothing, as the real one prints then),
``-L`` and the plain table. Anything else: the real tool's usage error, exit 2.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

# field → (CSV header with its unit, unit appended to values unless nounits, key in the state file)
FIELDS: dict[str, tuple[str, str, str]] = {
    "index": ("index", "", "index"),
    "name": ("name", "", "name"),
    "gpu_name": ("name", "", "name"),
    "uuid": ("uuid", "", "uuid"),
    "gpu_uuid": ("uuid", "", "uuid"),
    "pci.bus_id": ("pci.bus_id", "", "bus_id"),
    "driver_version": ("driver_version", "", "driver"),
    "count": ("count", "", "count"),
    "utilization.gpu": ("utilization.gpu [%]", " %", "utilization_gpu"),
    "utilization.memory": ("utilization.memory [%]", " %", "utilization_memory"),
    "memory.used": ("memory.used [MiB]", " MiB", "memory_used"),
    "memory.total": ("memory.total [MiB]", " MiB", "memory_total"),
    "memory.free": ("memory.free [MiB]", " MiB", "memory_free"),
    "temperature.gpu": ("temperature.gpu", "", "temperature"),
    "power.draw": ("power.draw [W]", " W", "power"),
    "power.limit": ("power.limit [W]", " W", "power_limit"),
}
USAGE = "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n"


def _state() -> dict[str, Any]:
    with open(os.environ["RUNCTL_SANDBOX_GPUS"], encoding="utf-8") as handle:
        return json.load(handle)


def _value(gpu: dict[str, Any], key: str, state: dict[str, Any]) -> str:
    if key == "driver":
        return str(state["driver"])
    if key == "count":
        return str(len(state["gpus"]))
    if key == "memory_free":
        return str(int(gpu["memory_total"]) - int(gpu["memory_used"]))
    if key == "power":
        return f"{float(gpu[key]):.2f}"
    if key == "power_limit":
        return f"{float(gpu[key]):.2f}"
    return str(gpu[key])


def query_gpu(fields_text: str, fmt: str) -> tuple[str, int]:
    options = fmt.split(",")
    if options[0] != "csv" or any(o not in ("noheader", "nounits") for o in options[1:]):
        return USAGE, 2
    names = [f.strip() for f in fields_text.split(",")]
    for name in names:
        if name not in FIELDS:
            return f'Field "{name}" is not a valid field to query.\n\n', 2
    state = _state()
    units = "nounits" not in options
    lines = []
    if "noheader" not in options:
        lines.append(", ".join(FIELDS[n][0] for n in names))
    for gpu in state["gpus"]:
        lines.append(", ".join(_value(gpu, FIELDS[n][2], state) + (FIELDS[n][1] if units else "") for n in names))
    return "".join(line + "\n" for line in lines), 0


def listing() -> str:
    return "".join(f"GPU {g['index']}: {g['name']} (UUID: {g['uuid']})\n" for g in _state()["gpus"])


def table() -> str:
    """The plain ``nvidia-smi`` table, laid out as the real one (``nvidia-smi-h200.txt``)."""
    state = _state()
    rule = "+-----------------------------------------+------------------------+----------------------+"
    wide = "+-----------------------------------------------------------------------------------------+"
    head = (f"| NVIDIA-SMI {state['driver']:<22} Driver Version: {state['driver']:<14} "
            f"CUDA Version: {state['cuda']:<9}|")
    out = [time.strftime("%a %b %d %H:%M:%S %Y").ljust(31), wide, head, rule,
           "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
           "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
           "|                                         |                        |               MIG M. |",
           "|=========================================+========================+======================|"]
    for gpu in state["gpus"]:
        power = f"{round(float(gpu['power']))}W / {round(float(gpu['power_limit'])):>4}W"
        memory = f"{gpu['memory_used']}MiB / {gpu['memory_total']}MiB"
        util = f"{gpu['utilization_gpu']}%"
        out += [f"| {gpu['index']:>3}  {gpu['name']:<31}On  |   {gpu['bus_id']:<16} Off |{'0':>21} |",
                f"| N/A {gpu['temperature']:>4}C    P0 {power:>23} | {memory:>22} | {util:>7}      Default |",
                "|                                         |                        |             Disabled |",
                rule]
    out += ["", wide,
            "| Processes:                                                                              |",
            "|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |",
            "|        ID   ID                                                               Usage      |",
            "|=========================================================================================|",
            "|  No running processes found                                                             |",
            wide]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    query = fmt = None
    plain = True
    for arg in argv:
        if arg.startswith("--query-gpu="):
            query, plain = arg.split("=", 1)[1], False
        elif arg.startswith("--query-compute-apps="):
            plain = False
            query = query or ""
        elif arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
        elif arg in ("-L", "--list-gpus"):
            sys.stdout.write(listing())
            return 0
        else:
            sys.stdout.write(USAGE)
            return 2
    if plain and fmt is None:
        sys.stdout.write(table())
        return 0
    if fmt is None or query is None:
        sys.stdout.write(USAGE)
        return 2
    if query == "":  # --query-compute-apps: no process uses a sandbox GPU
        return 0
    text, code = query_gpu(query, fmt)
    sys.stdout.write(text)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
