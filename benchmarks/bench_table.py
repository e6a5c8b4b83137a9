"""Time to build and style the resources table for 1,000 instances (frame + Styler + HTML, and text).

Run: .venv/bin/python benchmarks/bench_table.py
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from runctl_jupyter.costs.rows import CostRow
from runctl_jupyter.costs.styling import style
from runctl_jupyter.costs.table import frame
from runctl_jupyter.costs.text import render_text
from runctl_jupyter.costs.warnings import warnings_for

NOW = datetime(2026, 11, 5, 12, tzinfo=UTC)
TYPES = {"t3.micro": 0.0104, "m5.large": 0.096, "g5.xlarge": 1.006, "p3.8xlarge": 12.24, "c5.large": 0.085}


def make_rows(n: int, seed: int = 1) -> list[CostRow]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        itype = rnd.choice(list(TYPES))
        hourly = TYPES[itype]
        state = rnd.choice(["running"] * 4 + ["stopped"])
        up = rnd.randint(60, 72 * 3600) if state == "running" else 0
        accrued = hourly * up / 3600 + (rnd.random() * 5 if rnd.random() < 0.5 else 0)
        rows.append(CostRow(
            instance_id=f"i-{i:017x}", instance_type=itype, state=state, region="us-east-1", az="us-east-1a",
            launched=NOW - timedelta(seconds=up), uptime_seconds=up, usd_per_hour=hourly, accrued_usd=accrued,
            accrued_basis="ledger", price_source="pricing-api", price_as_of="2026-11-05",
            project=rnd.choice(["mnist", "bert", None]), ebs_usd_per_hour=0.011 if state == "stopped" else None,
            warnings=tuple(warnings_for(state, up, accrued, hourly))))
    return rows


def timed(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    rows = make_rows(1000)
    df = frame(rows)
    warned = sum(1 for r in rows if r.warnings)
    t_frame = timed(lambda: frame(rows))
    t_style = timed(lambda: style(frame(rows))._compute())  # noqa: SLF001  (apply the CSS, no HTML)
    t_html = timed(lambda: style(frame(rows)).to_html())
    t_text = timed(lambda: render_text(df))
    print(f"1,000 rows ({warned} warned), median of 5:")
    print(f"  frame(rows)                    {t_frame * 1000:7.1f} ms")
    print(f"  frame + style (CSS computed)   {t_style * 1000:7.1f} ms")
    print(f"  frame + style + to_html()      {t_html * 1000:7.1f} ms")
    print(f"  render_text(df)                {t_text * 1000:7.1f} ms")


if __name__ == "__main__":
    main()


def run(bench=None):  # type: ignore[no-untyped-def]
    """5. Table build + style for 1,000 rows (the ``python -m benchmarks`` entry)."""
    from .common import Metric

    rows = make_rows(1000)
    df = frame(rows)
    t_style = timed(lambda: style(frame(rows))._compute())  # noqa: SLF001
    t_html = timed(lambda: style(frame(rows)).to_html())
    t_text = timed(lambda: render_text(df))
    group = "resources table (1,000 rows)"
    return [
        Metric("table build + style (CSS computed), median of 5", round(t_style * 1000, 1), "ms", 150, group=group),
        Metric("table build + style + to_html()", round(t_html * 1000, 1), "ms", None, group=group),
        Metric("shell text rendering", round(t_text * 1000, 1), "ms", None, group=group),
    ]
