"""A fleet in the cost table: its rows together, per-node and total cost, warnings for the fleet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from runctl_jupyter.costs import CostRow, Thresholds, frame, render_text, sort_rows
from runctl_jupyter.costs.caption import caption_text
from runctl_jupyter.costs.fleets import fleet_totals, group_fleets

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _row(iid: str, hourly: float, hours: float, fleet: str | None = None, node: int = 0, state: str = "running",
         itype: str = "g5.xlarge") -> CostRow:
    return CostRow(instance_id=iid, instance_type=itype, state=state, region="us-east-1",
                   name=f"runctl-fleet-{fleet}-{node}" if fleet else "solo", launched=NOW - timedelta(hours=hours),
                   uptime_seconds=int(hours * 3600) if state == "running" else 0, usd_per_hour=hourly,
                   accrued_usd=hourly * hours, fleet=fleet)


def _table():
    rows = [_row("i-0000000000000000a", 0.0104, 1, itype="t3.micro"),
            _row("i-0000000000000000b", 1.006, 2, "ddp", 2), _row("i-0000000000000000c", 1.006, 3, "ddp", 0),
            _row("i-0000000000000000d", 5.672, 0.1, itype="g5.12xlarge"), _row("i-0000000000000000e", 1.006, 2, "ddp", 1)]
    df = frame(rows)
    df.attrs["runctl_thresholds"] = Thresholds(hourly_usd=3.0)
    return group_fleets(sort_rows(df, "cost"))


def test_a_fleets_rows_follow_its_first_one_in_node_order():
    df = _table()
    assert list(df["instance_id"]) == ["i-0000000000000000c", "i-0000000000000000e", "i-0000000000000000b",
                                       "i-0000000000000000d", "i-0000000000000000a"]
    assert list(df["fleet"].fillna("")) == ["ddp", "ddp", "ddp", "", ""]


def test_fleet_totals_and_warnings_for_the_fleet_as_a_whole():
    (total,) = fleet_totals(_table(), Thresholds(hourly_usd=3.0))
    assert (total.name, total.nodes, total.running, total.instance_types) == ("ddp", 3, 3, ("g5.xlarge",))
    assert round(total.usd_per_hour, 4) == 3.018 and round(total.accrued_usd, 2) == 7.04
    # no node is over $3/hr, the fleet is
    assert [w.text for w in total.warnings] == ["⚠️  Fleet ddp: High hourly cost: $3.0180/hr"]
    assert total.text() == "fleet ddp (3 × g5.xlarge, 3 running, $3.0180/hr, $7.04 accrued)"


def test_shell_text_groups_a_fleet_under_its_totals():
    text = render_text(_table())
    lines = text.splitlines()
    head = lines.index("  fleet ddp (3 × g5.xlarge, 3 running, $3.0180/hr, $7.04 accrued)")
    assert lines[head + 1] == "      ⚠️  Fleet ddp: High hourly cost: $3.0180/hr"
    assert [line.split()[0] for line in lines[head + 2:head + 5]] == ["i-0000000000000000c", "i-0000000000000000e",
                                                                      "i-0000000000000000b"]
    assert "fleet ddp" not in lines[-1]  # the totals line does not repeat it


def test_the_notebook_caption_names_each_fleet_and_its_warnings():
    caption = caption_text(_table())
    assert "fleet ddp (3 × g5.xlarge, 3 running, $3.0180/hr, $7.04 accrued)" in caption
    assert "⚠️  Fleet ddp: High hourly cost: $3.0180/hr" in caption


def test_a_table_without_fleets_is_unchanged():
    df = frame([_row("i-0000000000000000a", 0.0104, 1)])
    assert group_fleets(df) is df and fleet_totals(df) == []
