from __future__ import annotations

import json

import pytest
from costs_helpers import recorded

from runctl_jupyter.costs.pricelist import parse_price_list, product_filters


def test_parses_recorded_t3_micro_answer() -> None:
    resp = recorded("get_products_t3_micro_us-east-1.json")
    assert all(isinstance(e, str) for e in resp["PriceList"])  # AWS sends JSON strings
    assert parse_price_list(resp["PriceList"]) == {("us-east-1", "t3.micro"): pytest.approx(0.0104)}


def test_ignores_reserved_terms_zero_dimensions_and_unused_reservations() -> None:
    resp = recorded("get_products_g5_xlarge_eu-west-1.json")
    entry = json.loads(resp["PriceList"][0])
    assert "Reserved" in entry["terms"]  # the fixture really has them
    dims = next(iter(entry["terms"]["OnDemand"].values()))["priceDimensions"].values()
    assert any(d["pricePerUnit"]["USD"] == "0.0000000000" for d in dims)
    assert parse_price_list(resp["PriceList"]) == {("eu-west-1", "g5.xlarge"): pytest.approx(1.123)}


def test_empty_answer() -> None:
    assert parse_price_list(recorded("get_products_empty.json")["PriceList"]) == {}


def test_dicts_and_region_fallback() -> None:
    entry = json.loads(recorded("get_products_t3_micro_us-east-1.json")["PriceList"][0])
    del entry["product"]["attributes"]["regionCode"]
    assert parse_price_list([entry], region="us-east-1") == {("us-east-1", "t3.micro"): pytest.approx(0.0104)}
    assert parse_price_list([entry]) == {}  # no region known: skipped, not guessed


def test_non_compute_and_other_os_are_skipped() -> None:
    entry = json.loads(recorded("get_products_t3_micro_us-east-1.json")["PriceList"][0])
    windows = json.loads(json.dumps(entry))
    windows["product"]["attributes"]["operatingSystem"] = "Windows"
    storage = json.loads(json.dumps(entry))
    storage["product"]["productFamily"] = "Storage"
    assert parse_price_list([json.dumps(windows), json.dumps(storage)]) == {}


def test_filters() -> None:
    f = {x["Field"]: x["Value"] for x in product_filters("eu-west-1", "g5.xlarge")}
    assert f == {"instanceType": "g5.xlarge", "regionCode": "eu-west-1", "operatingSystem": "Linux",
                 "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"}
    assert {x["Type"] for x in product_filters("eu-west-1", "g5.xlarge")} == {"TERM_MATCH"}
