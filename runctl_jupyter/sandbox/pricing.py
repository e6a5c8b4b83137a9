"""AWSPriceListService.GetProducts answered from the price snapshot, in AWS's real shape.

Each PriceList entry is a JSON *string* (as the real API returns). Filters are matched against the
product attributes (field names case-insensitive; TERM_MATCH/EQUALS/CONTAINS/ANY_OF/NONE_OF).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from werkzeug.wrappers import Response

from .prices import LOCATIONS, on_demand, snapshot
from .protocol import AwsRequest, json_error, json_response

OFFER_TERM = "JRTCKXETXF"  # AWS's OnDemand offer term code
RATE_CODE = "6YS6EN2CT7"  # AWS's per-hour rate code


def _usage_prefix(region: str) -> str:
    prefixes = {"us-east-1": "", "us-east-2": "USE2-", "us-west-1": "USW1-", "us-west-2": "USW2-",
                "eu-west-1": "EU-", "eu-central-1": "EUC1-", "ap-northeast-1": "APN1-",
                "ap-southeast-1": "APS1-"}
    return prefixes.get(region, region.upper() + "-")


def _sku(region: str, instance_type: str) -> str:
    digest = hashlib.sha256(f"{region}|{instance_type}".encode()).hexdigest().upper()
    return "".join(c for c in digest if c.isalnum())[:16]


def product(region: str, instance_type: str, price: float) -> dict[str, Any]:
    sku = _sku(region, instance_type)
    date = snapshot()["date"]
    attrs = {
        "servicecode": "AmazonEC2", "servicename": "Amazon Elastic Compute Cloud",
        "instanceType": instance_type, "instanceFamily": "General purpose",
        "regionCode": region, "location": LOCATIONS.get(region, region), "locationType": "AWS Region",
        "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
        "capacitystatus": "Used", "licenseModel": "No License required", "marketoption": "OnDemand",
        "operation": "RunInstances", "usagetype": f"{_usage_prefix(region)}BoxUsage:{instance_type}",
    }
    term = f"{sku}.{OFFER_TERM}"
    return {
        "product": {"productFamily": "Compute Instance", "attributes": attrs, "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {term: {
            "priceDimensions": {f"{term}.{RATE_CODE}": {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "appliesTo": [],
                "rateCode": f"{term}.{RATE_CODE}",
                "description": f"${price:.4f} per On Demand Linux {instance_type} Instance Hour",
                "pricePerUnit": {"USD": f"{price:.10f}"}}},
            "sku": sku, "effectiveDate": f"{date}T00:00:00Z", "offerTermCode": OFFER_TERM,
            "termAttributes": {}}}},
        "version": date.replace("-", ""), "publicationDate": f"{date}T00:00:00Z",
    }


def _matches(attrs: dict[str, str], filters: list[dict[str, Any]]) -> bool:
    lowered = {k.lower(): str(v).lower() for k, v in attrs.items()}
    for flt in filters:
        field = str(flt.get("Field", "")).lower()
        kind = str(flt.get("Type", "TERM_MATCH")).upper()
        value = str(flt.get("Value", "")).lower()
        have = lowered.get(field)
        if have is None:
            return False
        options = [v.strip() for v in value.split(",")]
        ok = {"TERM_MATCH": have == value, "EQUALS": have == value, "CONTAINS": value in have,
              "ANY_OF": have in options, "NONE_OF": have not in options}.get(kind, False)
        if not ok:
            return False
    return True


def get_products(req: AwsRequest) -> Response:
    if req.action != "GetProducts":
        if req.action == "DescribeServices":
            return json_response({"Services": [{"ServiceCode": "AmazonEC2", "AttributeNames": [
                "instanceType", "regionCode", "location", "operatingSystem", "tenancy", "preInstalledSw",
                "capacitystatus"]}], "FormatVersion": "aws_v1"})
        return json_error("UnknownOperationException", f"The sandbox does not implement pricing {req.action}.")
    body = req.body
    if body.get("ServiceCode") != "AmazonEC2":
        return json_response({"FormatVersion": "aws_v1", "PriceList": []})
    filters = list(body.get("Filters") or [])
    rows = []
    for region, types in sorted(snapshot()["on_demand"].items()):
        for instance_type in sorted(types):
            price = on_demand(region, instance_type)
            if price is None:
                continue
            item = product(region, instance_type, price)
            if _matches(item["product"]["attributes"], filters):
                rows.append(json.dumps(item))
    try:
        start = int(body.get("NextToken") or 0)
    except ValueError:
        return json_error("InvalidNextTokenException", "The NextToken is not valid.")
    size = max(1, min(int(body.get("MaxResults") or 100), 100))
    page = rows[start:start + size]
    out: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": page}
    if start + size < len(rows):
        out["NextToken"] = str(start + size)
    return json_response(out)
