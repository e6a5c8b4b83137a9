"""CostRows used by the table, styling and text tests."""

from __future__ import annotations

from datetime import timedelta

from costs_helpers import NOW

from runctl_jupyter.costs.rows import CostRow
from runctl_jupyter.costs.warnings import Thresholds, warnings_for


def make_row(iid: str, itype: str = "t3.micro", state: str = "running", *, up: int = 3600,
             hourly: float | None = 0.0104, accrued: float | None = None, project: str | None = "mnist",
             basis: str = "ledger", ebs: float | None = None, thresholds: Thresholds | None = None,
             source: str = "snapshot", as_of: str = "2026-11-01") -> CostRow:
    if accrued is None and hourly is not None and state == "running":
        accrued = hourly * up / 3600
    return CostRow(
        instance_id=iid, instance_type=itype, state=state, region="us-east-1", az="us-east-1a",
        launched=NOW - timedelta(seconds=up) if state == "running" else NOW - timedelta(days=9),
        uptime_seconds=up if state == "running" else 0, usd_per_hour=hourly, accrued_usd=accrued,
        accrued_basis=basis,  # type: ignore[arg-type]
        price_source=source, price_as_of=as_of, project=project, ebs_usd_per_hour=ebs,
        warnings=tuple(warnings_for(state, up if state == "running" else 0, accrued, hourly, thresholds)),
    )


def mixed_rows() -> list[CostRow]:
    return [
        make_row("i-00000000000000001", up=3600),  # fine
        make_row("i-00000000000000002", up=25 * 3600 + 1800),  # long-running: amber
        make_row("i-00000000000000003", "p3.2xlarge", up=4 * 3600, hourly=3.06, accrued=12.34,
                 project="bert"),  # high cost: red
        make_row("i-00000000000000004", "p3.2xlarge", "stopped", hourly=3.06, accrued=40.0, ebs=0.011,
                 project="bert"),  # stopped: never warned
    ]
