"""Parsing AWS Pricing API ``get_products`` answers (pure).

Each ``PriceList`` entry is a JSON *string* with ``product`` (family, attributes, sku) and ``terms``
(``OnDemand`` and ``Reserved``). Only on-demand, hourly (``Hrs``), non-zero USD dimensions of
``Compute Instance`` products count; Reserved terms and $0 dimensions are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

PRICING_REGION = "us-east-1"  # the Pricing API lives in us-east-1 (and ap-south-1)

# Attribute values that pick the plain Linux on-demand price.
LINUX_ATTRIBUTES = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
}


def product_filters(region: str, instance_type: str) -> list[dict[str, str]]:
    """``Filters`` for ``get_products(ServiceCode="AmazonEC2", …)``."""
    fields = {"instanceType": instance_type, "regionCode": region, **LINUX_ATTRIBUTES}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in fields.items()]


def _hourly_usd(terms: Mapping[str, Any]) -> float | None:
    for offer in (terms.get("OnDemand") or {}).values():
        for dim in (offer.get("priceDimensions") or {}).values():
            if dim.get("unit") != "Hrs":
                continue
            try:
                usd = float((dim.get("pricePerUnit") or {}).get("USD", "nan"))
            except (TypeError, ValueError):
                continue
            if usd > 0:  # $0 dimensions (e.g. unused reservations) say nothing about the price
                return usd
    return None


def _matches(attrs: Mapping[str, Any]) -> bool:
    if attrs.get("operation", "RunInstances") != "RunInstances":
        return False
    return all(attrs.get(k, v) == v for k, v in LINUX_ATTRIBUTES.items())


def parse_price_list(price_list: Iterable[str | Mapping[str, Any]],
                     region: str | None = None) -> dict[tuple[str, str], float]:
    """``{(region, instance_type): usd_per_hour}`` from ``PriceList`` entries (strings or dicts).

    ``region`` fills in entries that carry no ``regionCode`` attribute. The first usable price per
    key wins (the filters make the answer unambiguous on AWS).
    """
    out: dict[tuple[str, str], float] = {}
    for entry in price_list:
        item = json.loads(entry) if isinstance(entry, str | bytes) else entry
        product = item.get("product") or {}
        if not str(product.get("productFamily", "")).startswith("Compute Instance"):
            continue
        attrs = product.get("attributes") or {}
        itype = attrs.get("instanceType")
        reg = attrs.get("regionCode") or region
        if not itype or not reg or not _matches(attrs):
            continue
        usd = _hourly_usd(item.get("terms") or {})
        if usd is not None:
            out.setdefault((reg, itype), usd)
    return out
