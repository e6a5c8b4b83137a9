from __future__ import annotations

import subprocess
import sys


def test_importing_costs_loads_neither_pandas_nor_boto3() -> None:
    code = ("import sys, runctl_jupyter.costs as c; c.warnings_for('running', 1, 1, 1); "
            "c.billed_seconds(5); c.load_snapshot(); "
            "print(sorted(m for m in ('pandas', 'boto3', 'botocore', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_table_names() -> None:
    import runctl_jupyter.costs as c
    from runctl_jupyter.costs.table import frame

    assert c.frame is frame
    assert set(c.__all__) >= {"frame", "style", "render_text", "summary", "sort_rows", "filter_rows", "export",
                              "plot", "PriceBook", "cost_rows"}
