"""Price sources: AWS Pricing API → on-disk cache (TTL) → the dated snapshot → "unknown".

Every figure says where it came from (:class:`PriceQuote.source`) and how old it is (``as_of``).
boto3 clients come from ``client_factory(service, region)`` (the session's factory, a sandbox one,
or a test's Stubber-wrapped client); botocore is only imported lazily, to classify errors.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from .pricelist import PRICING_REGION, parse_price_list, product_filters
from .snapshot import Snapshot, load_snapshot

log = logging.getLogger(__name__)

PriceSource = Literal["pricing-api", "cache", "snapshot", "spot-history", "unknown"]
ClientFactory = Callable[[str, str], Any]
Clock = Callable[[], datetime]

CACHE_FILE = "prices-cache.json"
CACHE_VERSION = 1
API_COOLDOWN = timedelta(minutes=5)  # after a failure, don't ask again per type (no N slow failures)
SPOT_TTL = timedelta(minutes=5)  # spot prices move; cache them only briefly, in memory
SPOT_MAX_RESULTS = 10


@dataclass(frozen=True)
class PriceQuote:
    usd_per_hour: float | None
    source: PriceSource
    as_of: str  # ISO date (or timestamp for spot-history); "" when unknown


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _is_aws_failure(exc: Exception) -> bool:
    """botocore errors (any kind) mean "the API is unavailable": fall back, don't crash."""
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, BotoCoreError | ClientError)


class PriceBook:
    """On-demand and spot prices with caching and honest fallbacks. Thread-safe."""

    def __init__(self, client_factory: ClientFactory, cache_dir: str | os.PathLike[str] | None,
                 ttl_hours: float = 24, *, snapshot: Snapshot | None = None, clock: Clock = _utcnow):
        self._factory = client_factory
        self._cache_path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
        self._ttl = timedelta(hours=ttl_hours)
        self._snapshot = snapshot or load_snapshot()
        self._clock = clock
        self._lock = threading.RLock()
        self._memory: dict[tuple[str, str], tuple[datetime, datetime, PriceQuote]] = {}  # (made, expires, quote)
        self._disk: dict[str, dict[str, Any]] | None = None  # lazily read
        self._spot: dict[tuple[str, str | None, str], tuple[datetime, PriceQuote]] = {}
        self._api_down_until: datetime | None = None
        self.api_calls = 0  # Pricing API calls made (for tests and benchmarks)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    # --- on-demand ---------------------------------------------------------------------------
    def on_demand(self, region: str, instance_type: str) -> PriceQuote:
        key = (region, instance_type)
        with self._lock:
            now = self._clock()
            hit = self._memory.get(key)
            if hit is not None and hit[0] <= now < hit[1]:  # a clock moved back does not reuse it
                return hit[2]
            quote, expires = self._lookup(region, instance_type, now)
            self._memory[key] = (now, expires, quote)
            return quote

    def prefetch(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], PriceQuote]:
        """Quotes for each distinct (region, type): one Pricing call per distinct pair when cold."""
        return {pair: self.on_demand(*pair) for pair in dict.fromkeys(pairs)}

    def _lookup(self, region: str, instance_type: str, now: datetime) -> tuple[PriceQuote, datetime]:
        """A quote and when to stop trusting it (fallbacks are retried after API_COOLDOWN)."""
        retry = now + API_COOLDOWN
        cached = self._disk_entry(region, instance_type)
        # An entry stamped after "now" (a cache written under another clock: the sandbox's frozen
        # one, or a machine clock that was ahead) is not fresh: it would show a date from the future.
        if cached is not None and timedelta(0) <= now - cached[1] < self._ttl:
            return PriceQuote(cached[0], "cache", cached[1].date().isoformat()), cached[1] + self._ttl
        fetched = self._fetch(region, instance_type, now)
        if fetched is not None:
            if fetched.usd_per_hour is not None:
                self._store(region, instance_type, fetched.usd_per_hour, now)
                return fetched, now + self._ttl
        elif cached is not None and cached[0] is not None and cached[1] <= now:  # API down: a stale cache beats the snapshot
            return PriceQuote(cached[0], "cache", cached[1].date().isoformat()), retry
        price = self._snapshot.on_demand_price(region, instance_type)
        if price is not None:
            return PriceQuote(price, "snapshot", self._snapshot.date), retry
        return PriceQuote(None, "unknown", ""), retry

    def _fetch(self, region: str, instance_type: str, now: datetime) -> PriceQuote | None:
        """The live price; a quote with None when AWS has no such product; None when AWS failed."""
        if self._api_down_until is not None and now < self._api_down_until:
            return None
        try:
            client = self._factory("pricing", PRICING_REGION)
            entries: list[str] = []
            kwargs: dict[str, Any] = {"ServiceCode": "AmazonEC2",
                                      "Filters": product_filters(region, instance_type), "MaxResults": 100}
            while True:
                self.api_calls += 1
                resp = client.get_products(**kwargs)
                entries.extend(resp.get("PriceList", []))
                token = resp.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        except Exception as exc:
            if not _is_aws_failure(exc):
                raise
            log.info("Pricing API unavailable (%s); using cached/snapshot prices", exc)
            self._api_down_until = now + API_COOLDOWN
            return None
        price = parse_price_list(entries, region).get((region, instance_type))
        return PriceQuote(price, "pricing-api" if price is not None else "unknown", now.date().isoformat())

    # --- disk cache (one JSON file, written atomically) ----------------------------------------
    def _load_disk(self) -> dict[str, dict[str, Any]]:
        if self._disk is None:
            self._disk = {}
            if self._cache_path is not None and self._cache_path.exists():
                try:
                    data = json.loads(self._cache_path.read_text("utf-8"))
                    if isinstance(data, dict) and data.get("version") == CACHE_VERSION \
                            and isinstance(data.get("entries"), dict):
                        self._disk = data["entries"]
                except (OSError, ValueError) as exc:
                    log.warning("Ignoring unreadable price cache %s: %s", self._cache_path, exc)
        return self._disk

    def _disk_entry(self, region: str, instance_type: str) -> tuple[float | None, datetime] | None:
        """A cache entry runctl can trust, or ``None``: anything else in the file (a hand edit, another
        program, a half-written file: not an object, a timestamp without a timezone, a negative or
        non-finite price) is ignored, never an error and never a price."""
        entry = self._load_disk().get(f"{region}/{instance_type}")
        if not isinstance(entry, dict):
            return None
        try:
            fetched = datetime.fromisoformat(str(entry["fetched"]).replace("Z", "+00:00"))
            price = entry.get("usd_per_hour")
            value = float(price) if price is not None else None
        except (KeyError, TypeError, ValueError):
            return None
        if fetched.tzinfo is None or (value is not None and not (math.isfinite(value) and value >= 0)):
            return None
        return value, fetched

    def _store(self, region: str, instance_type: str, price: float, now: datetime) -> None:
        entries = self._load_disk()
        entries[f"{region}/{instance_type}"] = {"usd_per_hour": price, "fetched": now.isoformat()}
        if self._cache_path is None:
            return
        try:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._cache_path.parent, prefix=".prices-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": CACHE_VERSION, "entries": entries}, f, indent=1, sort_keys=True)
            os.replace(tmp, self._cache_path)
        except OSError as exc:  # a read-only home must not break `resources`
            log.warning("Could not write the price cache %s: %s", self._cache_path, exc)

    # --- spot ----------------------------------------------------------------------------------
    def spot(self, region: str, az: str | None, instance_type: str) -> PriceQuote:
        """The newest spot price for this AZ; else on-demand × the snapshot's mid spot fraction."""
        key = (region, az, instance_type)
        now = self._clock()
        with self._lock:
            hit = self._spot.get(key)
            if hit is not None and timedelta(0) <= now - hit[0] < SPOT_TTL:
                return hit[1]
            quote = self._spot_history(region, az, instance_type, now) or self._spot_estimate(
                region, instance_type)
            self._spot[key] = (now, quote)
            return quote

    def _spot_history(self, region: str, az: str | None, instance_type: str,
                      now: datetime) -> PriceQuote | None:
        kwargs: dict[str, Any] = {"InstanceTypes": [instance_type], "ProductDescriptions": ["Linux/UNIX"],
                                  "StartTime": now, "MaxResults": SPOT_MAX_RESULTS}
        if az:
            kwargs["AvailabilityZone"] = az
        try:
            resp = self._factory("ec2", region).describe_spot_price_history(**kwargs)
        except Exception as exc:
            if not _is_aws_failure(exc):
                raise
            log.info("Spot price history unavailable (%s); estimating", exc)
            return None
        rows = [r for r in resp.get("SpotPriceHistory", [])
                if (not az or r.get("AvailabilityZone") == az) and r.get("InstanceType", instance_type)
                == instance_type]
        if not rows:
            return None
        newest = max(rows, key=lambda r: r.get("Timestamp") or datetime.min.replace(tzinfo=UTC))
        ts = newest.get("Timestamp")
        as_of = ts.astimezone(UTC).isoformat() if isinstance(ts, datetime) else now.isoformat()
        return PriceQuote(float(newest["SpotPrice"]), "spot-history", as_of)

    def _spot_estimate(self, region: str, instance_type: str) -> PriceQuote:
        od = self.on_demand(region, instance_type)
        if od.usd_per_hour is None:
            return PriceQuote(None, "unknown", "")
        return PriceQuote(od.usd_per_hour * self._snapshot.spot_mid_fraction, "snapshot", self._snapshot.date)

    # --- EBS -----------------------------------------------------------------------------------
    def ebs_gb_month(self, region: str) -> float | None:
        """gp3 USD per GB-month from the snapshot (volumes of stopped instances still bill)."""
        return self._snapshot.ebs_gb_month(region)

    def ebs_snapshot_gb_month(self, region: str) -> float | None:
        """EBS snapshot storage (standard tier) USD per GB-month, from the snapshot: they bill until deleted."""
        return self._snapshot.ebs_snapshot_price(region)
