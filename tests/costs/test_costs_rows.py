from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY
from costs_helpers import NOW, recorded

from runctl_jupyter.costs.billing import LEDGER_SECONDS_TAG, LEDGER_THROUGH_TAG, LEDGER_USD_TAG
from runctl_jupyter.costs.pricelist import product_filters
from runctl_jupyter.costs.pricing import PriceBook, PriceQuote
from runctl_jupyter.costs.rows import cost_row, cost_rows


def instance(iid: str, itype: str = "t3.micro", state: str = "running", *, hours: float = 1.0,
             tags: dict[str, str] | None = None, spot: bool = False, az: str = "us-east-1a",
             reason: str = "") -> dict[str, Any]:
    d: dict[str, Any] = {
        "InstanceId": iid, "InstanceType": itype, "State": {"Code": 16, "Name": state},
        "LaunchTime": NOW - timedelta(hours=hours), "Placement": {"AvailabilityZone": az},
        "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()], "StateTransitionReason": reason,
    }
    if spot:
        d["InstanceLifecycle"] = "spot"
    return d


def test_row_from_a_running_instance_with_ledger() -> None:
    tags = {"Name": "trainer", "runctl:project": "mnist", "runctl:run-state": "running",
            LEDGER_SECONDS_TAG: "7200", LEDGER_USD_TAG: "0.0208",
            LEDGER_THROUGH_TAG: (NOW - timedelta(hours=3)).isoformat()}
    row = cost_row(instance("i-0abc123def4567890", hours=0.5, tags=tags),
                   PriceQuote(0.0104, "pricing-api", "2026-11-05"), region="us-east-1", now=NOW,
                   ebs_gb=8, ebs_gb_month=0.08)
    assert (row.name, row.project, row.training, row.az) == ("trainer", "mnist", "running", "us-east-1a")
    assert row.uptime_seconds == 1800 and row.accrued_basis == "ledger"
    assert row.accrued_usd == pytest.approx(0.0208 + 0.0052)
    assert row.ebs_usd_per_hour == pytest.approx(8 * 0.08 / 730)
    assert row.warnings == ()
    assert row.launched is not None and row.launched.tzinfo is not None


def test_long_running_row_is_warned() -> None:
    row = cost_row(instance("i-0123456789abcdef0", hours=25.5), PriceQuote(0.0104, "snapshot", "2026-11-01"),
                   region="us-east-1", now=NOW)
    assert [w.kind for w in row.warnings] == ["long_running"]
    assert row.warnings[0].text == "⚠️  Running 25 hours ($0.27 accumulated)"


def test_stopped_row_has_no_warnings_and_ebs() -> None:
    row = cost_row(instance("i-0123456789abcdef1", "p3.2xlarge", "stopped", hours=500),
                   PriceQuote(3.06, "snapshot", "2026-11-01"), region="us-east-1", now=NOW,
                   ebs_gb=100, ebs_gb_month=0.08)
    assert row.warnings == () and row.uptime_seconds == 0 and row.accrued_usd is None
    assert row.ebs_usd_per_hour == pytest.approx(100 * 0.08 / 730)


def test_spot_instance_priced_from_spot_history(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    factory, stub = stubbed
    stub("pricing", "us-east-1").add_response(
        "get_products", recorded("get_products_t3_micro_us-east-1.json"),
        {"ServiceCode": "AmazonEC2", "Filters": product_filters("us-east-1", "t3.micro"), "MaxResults": 100})
    stub("ec2", "us-east-1").add_response("describe_spot_price_history", {"SpotPriceHistory": [
        {"AvailabilityZone": "us-east-1b", "InstanceType": "g5.xlarge", "ProductDescription": "Linux/UNIX",
         "SpotPrice": "0.4020", "Timestamp": NOW - timedelta(minutes=7)}]},
        {"InstanceTypes": ["g5.xlarge"], "ProductDescriptions": ["Linux/UNIX"], "AvailabilityZone": "us-east-1b",
         "StartTime": ANY, "MaxResults": 10})
    book = PriceBook(factory, tmp_path, clock=clock)
    rows = cost_rows([instance("i-0000000000000000a", hours=2),
                      instance("i-0000000000000000b", "g5.xlarge", hours=2, spot=True, az="us-east-1b"),
                      instance("i-0000000000000000c", state="terminated")],
                     book, region="us-east-1", now=NOW)
    assert [r.instance_id for r in rows] == ["i-0000000000000000a", "i-0000000000000000b"]
    spot = rows[1]
    assert (spot.lifecycle, spot.price_source, spot.usd_per_hour) == ("spot", "spot-history", 0.402)
    assert spot.accrued_usd == pytest.approx(2 * 0.402)
    assert rows[0].price_source == "pricing-api"
    assert book.api_calls == 1  # the spot instance needed no on-demand lookup
    for s in ("pricing", "ec2"):
        stub(s, "us-east-1").assert_no_pending_responses()


def test_training_column_carries_the_guardian_state():
    from runctl_jupyter.costs.rows import training_text

    assert training_text({"runctl:run-state": "running"}) == "running"
    assert training_text({"runctl:run-state": "exit 0", "runctl:guardian": "acted: spot-notice, "
                          "checkpoint_epoch_4.json uploaded at 09:00"}) == (
        "exit 0 · guardian acted: spot-notice, checkpoint_epoch_4.json uploaded at 09:00")
    assert training_text({}) is None


def test_a_run_or_guardian_tagged_alive_ends_with_its_instance():
    from runctl_jupyter.costs.rows import run_tags_as_of, training_text

    tags = {"runctl:run-state": "running", "runctl:guardian": "watching: autostop 20s, max 0.004h"}
    assert training_text(tags, "running") == "running · guardian watching: autostop 20s, max 0.004h"
    assert training_text(tags, "stopped") == "ended: instance stopped · guardian ended: instance stopped"
    assert training_text(tags, "shutting-down") == "ended: instance terminated · guardian ended: instance terminated"
    assert training_text({"runctl:guardian": "acting: max-hours, no checkpoint at ?"}, "stopped") == (
        "none · guardian ended: instance stopped (last seen acting: max-hours)")
    # what is already over stays as written
    done = {"runctl:run-state": "exit 0", "runctl:guardian": "acted: max-hours, checkpoint_epoch_3.json uploaded"}
    assert run_tags_as_of(done, "stopped") == {}
    assert training_text(done, "stopped") == "exit 0 · guardian acted: max-hours, checkpoint_epoch_3.json uploaded"
