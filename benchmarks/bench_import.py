"""6. ``%load_ext runctl_jupyter`` time as a ratio to ``import boto3, pandas, ipywidgets``.

Each is measured in fresh subprocesses (median of 5). For ``load_ext`` the process has already
imported IPython and created an InteractiveShell, then times only ``load_ext``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from .common import REPO, Metric

HEAVY = "import time; t = time.perf_counter(); import boto3, pandas, ipywidgets; print(time.perf_counter() - t)"
LOAD_EXT = ("from IPython.core.interactiveshell import InteractiveShell; import time; "
            "ip = InteractiveShell.instance(); t = time.perf_counter(); "
            "ip.run_line_magic('load_ext', 'runctl_jupyter'); print(time.perf_counter() - t)")
HEAVY_AFTER = ("from IPython.core.interactiveshell import InteractiveShell; import sys; "
               "ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'runctl_jupyter'); "
               "print(','.join(m for m in ('boto3', 'botocore', 'pandas', 'ipywidgets', 'moto') if m in sys.modules))")


def _seconds(code: str, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                             timeout=120)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def run(bench=None) -> list[Metric]:  # type: ignore[no-untyped-def]
    heavy = _seconds(HEAVY)
    load = _seconds(LOAD_EXT)
    loaded = subprocess.run([sys.executable, "-c", HEAVY_AFTER], capture_output=True, text=True, check=True,
                            cwd=REPO, timeout=120).stdout.strip().splitlines()[-1:] or [""]
    group = "notebook start-up"
    return [
        Metric("%load_ext runctl_jupyter / import boto3+pandas+ipywidgets", round(load / heavy, 3), "x", 0.25,
               group=group, note=f"load_ext {load * 1000:.0f} ms, heavy imports {heavy * 1000:.0f} ms (median of 5)"),
        Metric("%load_ext runctl_jupyter", round(load * 1000, 1), "ms", None, group=group,
               note=f"heavy modules imported by load_ext: {loaded[0] or 'none'}"),
    ]
