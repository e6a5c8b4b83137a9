"""Pricing API from the package snapshot; spot prices per AZ below on-demand."""

from __future__ import annotations

import json

import pytest
from sandbox_helpers import Sandbox

from runctl_jupyter.sandbox.prices import snapshot as price_snapshot

pytestmark = pytest.mark.sandbox

FILTERS = [
    {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "t3.micro"},
    {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"},
    {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
    {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
    {"Type": "TERM_MATCH", "Field": "preInstalledSw", "Value": "NA"},
    {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
]


def _usd(item: dict) -> float:
    term = next(iter(item["terms"]["OnDemand"].values()))
    return float(next(iter(term["priceDimensions"].values()))["pricePerUnit"]["USD"])


def test_get_products_returns_the_snapshot_price(sb: Sandbox) -> None:
    pricing = sb.client("pricing", "us-east-1")
    result = pricing.get_products(ServiceCode="AmazonEC2", Filters=FILTERS, MaxResults=10)
    assert len(result["PriceList"]) == 1
    item = json.loads(result["PriceList"][0])  # AWS returns JSON strings
    attrs = item["product"]["attributes"]
    assert attrs["instanceType"] == "t3.micro" and attrs["regionCode"] == "us-east-1"
    assert attrs["location"] == "US East (N. Virginia)"
    assert item["product"]["productFamily"] == "Compute Instance"
    assert _usd(item) == pytest.approx(price_snapshot()["on_demand"]["us-east-1"]["t3.micro"])
    assert item["publicationDate"].startswith(price_snapshot()["date"])


def test_location_filter_and_unknown_type(sb: Sandbox) -> None:
    pricing = sb.client("pricing", "us-east-1")
    by_location = pricing.get_products(ServiceCode="AmazonEC2", Filters=[
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "t3.micro"},
        {"Type": "TERM_MATCH", "Field": "location", "Value": "EU (Ireland)"}])["PriceList"]
    assert [json.loads(p)["product"]["attributes"]["regionCode"] for p in by_location] == ["eu-west-1"]
    unknown = pricing.get_products(ServiceCode="AmazonEC2", Filters=[
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "z9.nope"}])["PriceList"]
    assert unknown == []


def test_get_products_pages(sb: Sandbox) -> None:
    pricing = sb.client("pricing", "us-east-1")
    flt = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"}]
    pages = list(pricing.get_paginator("get_products").paginate(
        ServiceCode="AmazonEC2", Filters=flt, PaginationConfig={"PageSize": 7}))
    items = [p for page in pages for p in page["PriceList"]]
    assert len(pages) > 1
    assert len(items) == len(price_snapshot()["on_demand"]["us-east-1"])


def test_spot_prices_differ_per_az_and_are_below_on_demand(sb: Sandbox) -> None:
    history = sb.client("ec2").describe_spot_price_history(
        InstanceTypes=["g5.xlarge"], ProductDescriptions=["Linux/UNIX"])["SpotPriceHistory"]
    zones = {h["AvailabilityZone"] for h in history}
    assert len(zones) >= 3 and all(z.startswith("us-east-1") for z in zones)
    prices = [float(h["SpotPrice"]) for h in history]
    assert len(set(prices)) > 1
    on_demand = price_snapshot()["on_demand"]["us-east-1"]["g5.xlarge"]
    lo, hi = price_snapshot()["spot_fraction_range"]
    assert all(on_demand * lo - 1e-6 <= p <= on_demand * hi + 1e-6 for p in prices)
    one_az = sb.client("ec2").describe_spot_price_history(InstanceTypes=["g5.xlarge"],
                                                          AvailabilityZone="us-east-1b")["SpotPriceHistory"]
    assert [h["AvailabilityZone"] for h in one_az] == ["us-east-1b"]
