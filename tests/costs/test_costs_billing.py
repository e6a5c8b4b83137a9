from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runctl_jupyter.costs.billing import (
    LEDGER_SECONDS_TAG,
    LEDGER_THROUGH_TAG,
    LEDGER_USD_TAG,
    accrued_usd,
    billed_seconds,
    current_accrual,
    ebs_usd_per_hour,
    ledger_after_stop,
    ledger_from_tags,
    stop_time_from_reason,
    uptime_seconds,
)

T3_MICRO = 0.0104
T0 = datetime(2026, 11, 1, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("run", "billed"), [
    (0, 0), (-5, 0), (0.5, 60), (30, 60), (59.9, 60), (60, 60), (61.7, 61), (3600, 3600), (7200.99, 7200),
])
def test_billed_seconds(run: float, billed: int) -> None:
    assert billed_seconds(run) == billed


def test_thirty_second_run_is_billed_as_sixty() -> None:
    assert billed_seconds(30) == 60
    assert accrued_usd(T3_MICRO, billed_seconds(30)) == pytest.approx(0.0104 / 60)  # one minute


@given(st.floats(min_value=0.001, max_value=1e8, allow_nan=False))
def test_billed_seconds_properties(run: float) -> None:
    b = billed_seconds(run)
    assert b >= 60
    assert b <= max(60, run)
    assert b > run - 1 or b == 60


def test_start_stop_start_ledger() -> None:
    # t3.micro runs 2 h, is stopped by runctl, started again and has run 30 min now.
    stop = T0 + timedelta(hours=2)
    tags = ledger_after_stop({}, T0, stop, T3_MICRO)
    assert tags[LEDGER_SECONDS_TAG] == "7200"
    assert float(tags[LEDGER_USD_TAG]) == pytest.approx(0.0208)
    assert tags[LEDGER_THROUGH_TAG] == "2026-11-01T10:00:00Z"

    restart = T0 + timedelta(hours=3)
    now = restart + timedelta(minutes=30)
    acc = current_accrual(tags, restart, now, T3_MICRO, running=True)
    assert acc.basis == "ledger"
    assert acc.current_seconds == 1800
    assert acc.billed_seconds == 9000
    assert acc.usd == pytest.approx(0.0208 + 0.0052)  # ledger + current run


def test_ledger_update_is_idempotent_and_accumulates() -> None:
    stop = T0 + timedelta(hours=2)
    once = ledger_after_stop({}, T0, stop, T3_MICRO)
    assert ledger_after_stop(once, T0, stop, T3_MICRO) == once  # a retried stop counts nothing twice
    second_start = T0 + timedelta(hours=5)
    twice = ledger_after_stop(once, second_start, second_start + timedelta(seconds=10), T3_MICRO)
    assert twice[LEDGER_SECONDS_TAG] == str(7200 + 60)  # the second, 10-second run bills 60 s


def test_boto3_tag_list_form() -> None:
    tags = [{"Key": LEDGER_SECONDS_TAG, "Value": "3600"}, {"Key": LEDGER_USD_TAG, "Value": "0.5"},
            {"Key": "Name", "Value": "x"}]
    ledger = ledger_from_tags(tags)
    assert ledger is not None and ledger.seconds == 3600 and ledger.usd == 0.5


@pytest.mark.parametrize("bad", [{LEDGER_SECONDS_TAG: "lots"}, {LEDGER_USD_TAG: "-1"},
                                 {LEDGER_USD_TAG: "nan"}])
def test_unreadable_ledger_is_treated_as_absent(bad: dict[str, str]) -> None:
    assert ledger_from_tags(bad) is None
    acc = current_accrual(bad, T0, T0 + timedelta(hours=1), T3_MICRO)
    assert acc.basis == "since last start"
    assert acc.usd == pytest.approx(0.0104)


def test_without_ledger_accrual_is_since_last_start() -> None:
    acc = current_accrual({"Name": "a"}, T0, T0 + timedelta(hours=25, minutes=30), T3_MICRO)
    assert acc.basis == "since last start"
    assert acc.usd == pytest.approx(25.5 * 0.0104)


def test_stopped_instance_accrual() -> None:
    tags = ledger_after_stop({}, T0, T0 + timedelta(hours=2), T3_MICRO)
    later = T0 + timedelta(days=3)
    stopped = current_accrual(tags, T0, later, T3_MICRO, running=False)
    assert stopped.usd == pytest.approx(0.0208) and stopped.current_seconds == 0
    # No ledger and no stop time: nothing truthful can be said.
    assert current_accrual({}, T0, later, T3_MICRO, running=False).usd is None
    # Stopped outside runctl: the last run is not in the ledger, but EC2 says when it stopped.
    stop = stop_time_from_reason("User initiated (2026-11-01 11:00:00 GMT)")
    acc = current_accrual({}, T0, later, T3_MICRO, running=False, stopped_at=stop)
    assert acc.usd == pytest.approx(0.0104) and acc.current_seconds == 3600


def test_unknown_price_gives_unknown_accrual() -> None:
    assert current_accrual({}, T0, T0 + timedelta(hours=1), None).usd is None


def test_naive_datetimes_are_utc() -> None:
    naive = T0.replace(tzinfo=None)
    assert uptime_seconds(naive, T0 + timedelta(seconds=90)) == 90
    assert uptime_seconds(T0, T0 + timedelta(hours=1), running=False) == 0


def test_stop_time_from_reason() -> None:
    assert stop_time_from_reason("User initiated (2024-05-01 10:00:00 GMT)") == datetime(
        2024, 5, 1, 10, 0, tzinfo=UTC)
    assert stop_time_from_reason("") is None
    assert stop_time_from_reason(None) is None


def test_ebs_per_hour() -> None:
    assert ebs_usd_per_hour(100, 0.08) == pytest.approx(100 * 0.08 / 730)
