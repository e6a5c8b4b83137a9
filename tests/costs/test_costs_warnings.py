from __future__ import annotations

import pytest

from runctl_jupyter.costs.warnings import CostWarning, Thresholds, warnings_for

DAY = 24 * 3600


def kinds(ws: list[CostWarning]) -> list[str]:
    return [w.kind for w in ws]


def test_uptime_threshold_is_strict_and_in_seconds() -> None:
    assert warnings_for("running", DAY, 0.25, 0.0104) == []
    ws = warnings_for("running", DAY + 1, 0.25, 0.0104)
    assert ws == [CostWarning("long_running", "⚠️  Running 24 hours ($0.25 accumulated)")]
    assert kinds(warnings_for("running", DAY - 1, 0.25, 0.0104)) == []


def test_long_running_text_floors_hours() -> None:
    ws = warnings_for("running", 25 * 3600 + 30 * 60, 0.26, 0.0104)
    assert [w.text for w in ws] == ["⚠️  Running 25 hours ($0.26 accumulated)"]


@pytest.mark.parametrize(("accrued", "warned"), [(10.0, False), (10.004, False), (10.01, True), (9.99, False)])
def test_accrued_threshold(accrued: float, warned: bool) -> None:
    ws = warnings_for("running", 3600, accrued, 0.1)
    assert kinds(ws) == (["high_cost"] if warned else [])


def test_high_cost_text() -> None:
    assert warnings_for("running", 60, 12.34, 0.1)[0].text == "⚠️  High cost: $12.34 accumulated"


@pytest.mark.parametrize(("hourly", "warned"), [(5.0, False), (4.99, False), (5.0001, True), (5.67, True)])
def test_hourly_threshold(hourly: float, warned: bool) -> None:
    assert kinds(warnings_for("running", 60, 0.1, hourly)) == (["high_hourly"] if warned else [])


def test_high_hourly_text_uses_runctls_four_decimals() -> None:
    # runctl: format!("⚠️  High hourly cost: ${:.4}/hr", inst.cost_per_hour)
    assert warnings_for("running", 60, 0.1, 5.67)[0].text == "⚠️  High hourly cost: $5.6700/hr"


def test_all_three_in_runctls_order() -> None:
    ws = warnings_for("running", 3 * DAY, 98.0, 21.0115)
    assert kinds(ws) == ["long_running", "high_cost", "high_hourly"]
    assert all(w.text.startswith("⚠️  ") and not w.text.startswith("⚠️   ") for w in ws)


@pytest.mark.parametrize("state", ["stopped", "stopping", "pending", "shutting-down", "terminated"])
def test_only_running_instances_are_warned(state: str) -> None:
    assert warnings_for(state, 30 * DAY, 1000.0, 40.0) == []


def test_unknown_values_do_not_crash() -> None:
    ws = warnings_for("running", DAY + 1, None, None)
    assert [w.text for w in ws] == ["⚠️  Running 24 hours (cost unknown)"]


def test_custom_thresholds() -> None:
    t = Thresholds(uptime_hours=1, accrued_usd=0.5, hourly_usd=0.01)
    assert kinds(warnings_for("running", 3601, 0.51, 0.0104, t)) == ["long_running", "high_cost",
                                                                      "high_hourly"]
    with pytest.raises(ValueError):
        Thresholds(accrued_usd=-1)
