from __future__ import annotations

import json
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from botocore.stub import ANY
from costs_helpers import NOW, recorded

from runctl_jupyter.costs.pricelist import product_filters
from runctl_jupyter.costs.pricing import CACHE_FILE, PriceBook, PriceQuote
from runctl_jupyter.costs.snapshot import load_snapshot

SNAP = load_snapshot()


def expect_products(stub: Any, region: str, itype: str, fixture: str) -> None:
    stub("pricing", "us-east-1").add_response(
        "get_products", recorded(fixture),
        {"ServiceCode": "AmazonEC2", "Filters": product_filters(region, itype), "MaxResults": 100})


def test_cold_prefetch_calls_once_per_distinct_type_then_warm_is_free(stubbed: Any, tmp_path: Path,
                                                                      clock: Any) -> None:
    factory, stub = stubbed
    expect_products(stub, "us-east-1", "t3.micro", "get_products_t3_micro_us-east-1.json")
    expect_products(stub, "eu-west-1", "g5.xlarge", "get_products_g5_xlarge_eu-west-1.json")
    book = PriceBook(factory, tmp_path, clock=clock)
    pairs = [("us-east-1", "t3.micro")] * 5 + [("eu-west-1", "g5.xlarge")] * 3
    quotes = book.prefetch(pairs)
    stub("pricing", "us-east-1").assert_no_pending_responses()
    assert book.api_calls == 2
    assert quotes[("us-east-1", "t3.micro")] == PriceQuote(0.0104, "pricing-api", "2026-11-05")
    assert quotes[("eu-west-1", "g5.xlarge")].usd_per_hour == pytest.approx(1.123)
    # warm, same process (memory) …
    book.prefetch(pairs)
    assert book.api_calls == 2
    # … and a new process (disk): 0 calls
    warm = PriceBook(factory, tmp_path, clock=clock)
    assert warm.on_demand("us-east-1", "t3.micro") == PriceQuote(0.0104, "cache", "2026-11-05")
    warm.prefetch(pairs)
    assert warm.api_calls == 0


def test_cache_file_is_one_atomic_json_file(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    factory, stub = stubbed
    expect_products(stub, "us-east-1", "t3.micro", "get_products_t3_micro_us-east-1.json")
    PriceBook(factory, tmp_path, clock=clock).on_demand("us-east-1", "t3.micro")
    assert [p.name for p in tmp_path.iterdir()] == [CACHE_FILE]  # no temp files left behind
    data = json.loads((tmp_path / CACHE_FILE).read_text())
    assert data["entries"]["us-east-1/t3.micro"]["usd_per_hour"] == 0.0104


def test_ttl_expiry_fetches_again(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    factory, stub = stubbed
    expect_products(stub, "us-east-1", "t3.micro", "get_products_t3_micro_us-east-1.json")
    PriceBook(factory, tmp_path, clock=clock).on_demand("us-east-1", "t3.micro")
    clock.advance(hours=23)
    fresh = PriceBook(factory, tmp_path, clock=clock)
    assert fresh.on_demand("us-east-1", "t3.micro").source == "cache"
    clock.advance(hours=2)  # 25 h after the fetch
    expect_products(stub, "us-east-1", "t3.micro", "get_products_t3_micro_us-east-1.json")
    assert fresh.on_demand("us-east-1", "t3.micro").source == "pricing-api"  # memory entry expired too
    assert fresh.api_calls == 1
    stub("pricing", "us-east-1").assert_no_pending_responses()


def test_client_error_falls_back_to_snapshot_and_backs_off(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    factory, stub = stubbed
    stub("pricing", "us-east-1").add_client_error("get_products", "ThrottlingException", "Rate exceeded")
    book = PriceBook(factory, tmp_path, clock=clock)
    q = book.on_demand("us-east-1", "t3.micro")
    assert q == PriceQuote(SNAP.on_demand_price("us-east-1", "t3.micro"), "snapshot", SNAP.date)
    assert book.on_demand("us-east-1", "m5.large").source == "snapshot"
    assert book.api_calls == 1  # no second slow failure for the next type
    assert not (tmp_path / CACHE_FILE).exists()  # snapshot figures are not cached as live ones


@pytest.mark.parametrize("exc", [NoCredentialsError(), EndpointConnectionError(endpoint_url="https://x")])
def test_no_credentials_or_network_falls_back(tmp_path: Path, clock: Any, exc: Exception) -> None:
    def factory(service: str, region: str) -> Any:
        raise exc

    q = PriceBook(factory, tmp_path, clock=clock).on_demand("eu-west-1", "g5.xlarge")
    assert q.source == "snapshot" and q.usd_per_hour == SNAP.on_demand_price("eu-west-1", "g5.xlarge")


def test_stale_cache_beats_snapshot_when_api_fails(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    (tmp_path / CACHE_FILE).write_text(json.dumps({"version": 1, "entries": {
        "us-east-1/t3.micro": {"usd_per_hour": 0.0111, "fetched": "2026-10-01T00:00:00+00:00"}}}))
    factory, stub = stubbed
    stub("pricing", "us-east-1").add_client_error("get_products", "AccessDeniedException")
    assert PriceBook(factory, tmp_path, clock=clock).on_demand("us-east-1", "t3.micro") == PriceQuote(
        0.0111, "cache", "2026-10-01")


def test_unknown_type_is_unknown_not_a_crash(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    factory, stub = stubbed
    expect_products(stub, "us-east-1", "x9.imaginary", "get_products_empty.json")
    book = PriceBook(factory, tmp_path, clock=clock)
    assert book.on_demand("us-east-1", "x9.imaginary") == PriceQuote(None, "unknown", "")
    stub("ec2", "us-east-1").add_response("describe_spot_price_history", {"SpotPriceHistory": []})
    assert book.spot("us-east-1", None, "x9.imaginary") == PriceQuote(None, "unknown", "")
    assert book.api_calls == 1


def test_corrupt_cache_is_ignored(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    (tmp_path / CACHE_FILE).write_text("{not json")
    factory, stub = stubbed
    expect_products(stub, "us-east-1", "t3.micro", "get_products_t3_micro_us-east-1.json")
    assert PriceBook(factory, tmp_path, clock=clock).on_demand("us-east-1", "t3.micro").source == "pricing-api"


def _entry(**fields: Any) -> str:
    return json.dumps({"version": 1, "entries": {"us-east-1/t3.micro": fields}})


@pytest.mark.parametrize("text", [
    "[]", "null", '"prices"', json.dumps({"version": 1, "entries": {"us-east-1/t3.micro": 5}}),
    _entry(usd_per_hour=0.0111, fetched="2026-10-01T00:00:00"),  # no timezone
    _entry(usd_per_hour=-0.0111, fetched="2026-10-01T00:00:00+00:00"),  # negative
    _entry(usd_per_hour="NaN", fetched="2026-10-01T00:00:00+00:00"),
    _entry(usd_per_hour="inf", fetched="2026-10-01T00:00:00+00:00"),
], ids=["list", "null", "string", "entry-not-object", "naive-time", "negative", "nan", "inf"])
def test_a_cache_runctl_cannot_trust_is_ignored_never_a_crash_or_a_price(stubbed: Any, tmp_path: Path, clock: Any,
                                                                         text: str) -> None:
    """With the API down, such an entry must not win over the snapshot (it used to crash or be used)."""
    (tmp_path / CACHE_FILE).write_text(text)
    factory, stub = stubbed
    stub("pricing", "us-east-1").add_client_error("get_products", "AccessDeniedException")
    q = PriceBook(factory, tmp_path, clock=clock).on_demand("us-east-1", "t3.micro")
    assert q == PriceQuote(SNAP.on_demand_price("us-east-1", "t3.micro"), "snapshot", SNAP.date)


def _spot_row(az: str, price: str, minutes_ago: int) -> dict[str, Any]:
    return {"AvailabilityZone": az, "InstanceType": "g5.xlarge", "ProductDescription": "Linux/UNIX",
            "SpotPrice": price, "Timestamp": NOW - timedelta(minutes=minutes_ago)}


def test_spot_price_from_history_newest_for_the_az(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    factory, stub = stubbed
    stub("ec2", "us-east-1").add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [_spot_row("us-east-1a", "0.4010", 90), _spot_row("us-east-1a", "0.3987", 5)]},
        {"InstanceTypes": ["g5.xlarge"], "ProductDescriptions": ["Linux/UNIX"],
         "AvailabilityZone": "us-east-1a", "StartTime": ANY, "MaxResults": 10})
    book = PriceBook(factory, tmp_path, clock=clock)
    q = book.spot("us-east-1", "us-east-1a", "g5.xlarge")
    assert q.usd_per_hour == pytest.approx(0.3987) and q.source == "spot-history"
    assert q.as_of == (NOW - timedelta(minutes=5)).astimezone(UTC).isoformat()
    assert book.spot("us-east-1", "us-east-1a", "g5.xlarge") == q  # cached briefly: no second call
    stub("ec2", "us-east-1").assert_no_pending_responses()


def test_spot_fallback_is_on_demand_times_snapshot_fraction(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    factory, stub = stubbed
    stub("ec2", "us-east-1").add_client_error("describe_spot_price_history", "UnauthorizedOperation")
    stub("pricing", "us-east-1").add_client_error("get_products", "ThrottlingException")
    q = PriceBook(factory, tmp_path, clock=clock).spot("us-east-1", "us-east-1a", "g5.xlarge")
    od = SNAP.on_demand_price("us-east-1", "g5.xlarge")
    assert od is not None
    assert q == PriceQuote(pytest.approx(od * SNAP.spot_mid_fraction), "snapshot", SNAP.date)


def test_pricing_uses_the_us_east_1_endpoint(tmp_path: Path, clock: Any) -> None:
    seen: list[tuple[str, str]] = []

    def factory(service: str, region: str) -> Any:
        seen.append((service, region))
        raise NoCredentialsError()

    PriceBook(factory, tmp_path, clock=clock).on_demand("ap-northeast-1", "t3.micro")
    assert seen == [("pricing", "us-east-1")]



def test_a_cache_entry_from_a_later_clock_is_not_fresh(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    """A cache written under another clock (the machine's, before the sandbox froze its own at an
    earlier date) would show a price date from the future: it is fetched again, dated by this clock."""
    (tmp_path / CACHE_FILE).write_text(json.dumps({"version": 1, "entries": {
        "us-east-1/t3.micro": {"usd_per_hour": 0.0111, "fetched": (NOW + timedelta(days=7)).isoformat()}}}))
    factory, stub = stubbed
    expect_products(stub, "us-east-1", "t3.micro", "get_products_t3_micro_us-east-1.json")
    assert PriceBook(factory, tmp_path, clock=clock).on_demand("us-east-1", "t3.micro") == PriceQuote(
        0.0104, "pricing-api", NOW.date().isoformat())


def test_a_clock_moved_back_does_not_reuse_a_quote_made_later(stubbed: Any, tmp_path: Path, clock: Any) -> None:
    factory, stub = stubbed
    expect_products(stub, "us-east-1", "t3.micro", "get_products_t3_micro_us-east-1.json")
    book = PriceBook(factory, None, clock=clock)
    assert book.on_demand("us-east-1", "t3.micro").as_of == NOW.date().isoformat()
    clock.advance(hours=-72)  # e.g. `sandbox start --fresh --freeze-clock` at an earlier date
    expect_products(stub, "us-east-1", "t3.micro", "get_products_t3_micro_us-east-1.json")
    assert book.on_demand("us-east-1", "t3.micro").as_of == (NOW - timedelta(hours=72)).date().isoformat()
    assert book.api_calls == 2
