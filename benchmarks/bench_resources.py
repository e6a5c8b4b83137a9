"""4. ``resources`` over 1,000 instances in 4 regions: API calls per region, Pricing calls, wall time.

250 instances per region (``run_instances(MinCount=250, MaxCount=250)``), tagged like runctl's, in 5
instance types. DescribeInstances / DescribeVolumes / GetProducts are counted in ``Context.calls``
(and ``PriceBook.api_calls``). The cold run starts with no price book in memory and no price cache
on disk; the warm run follows it. Then the sandbox adds 100 ms to every AWS call
(``control.set_faults(info, latency_ms=100)``) and the wall time of all 4 regions is compared
with one region (median of 5, warm prices, a new Context per call as each command has).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from .common import Bench, Metric

REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-1")
# Four more regions with a handful of instances each: there the 100 ms per call dominates, so the
# figure shows whether regions' calls overlap (with 250 instances per region the sandbox's single
# moto lock and botocore's XML parsing under the GIL dominate instead; see BENCHMARKS.md).
SMALL_REGIONS = ("us-east-2", "eu-central-1", "ap-northeast-1", "sa-east-1")
SMALL_PER_REGION = 25
PER_REGION = 250
TYPES = ("t3.micro", "m5.large", "c5.xlarge", "g5.xlarge", "r5.large")
ANCHOR = "SkyPilot / runctl resources: one region"


def _populate(ctx, created: str, regions=REGIONS, per_region: int = PER_REGION) -> None:
    for region in regions:
        ec2 = ctx.client("ec2", region)
        image = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
        for n, itype in enumerate(TYPES):
            count = max(1, per_region // len(TYPES))
            tags = [{"Key": "Name", "Value": f"runctl-bench-{n}"}, {"Key": "runctl:project", "Value": f"bench{n}"},
                    {"Key": "runctl:created", "Value": created}, {"Key": "runctl:ledger-seconds", "Value": "0"},
                    {"Key": "runctl:ledger-usd", "Value": "0"}, {"Key": "runctl:disk-gb", "Value": "30"}]
            ec2.run_instances(ImageId=image, InstanceType=itype, MinCount=count, MaxCount=count,
                              TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])


def _fresh_books(sandbox_dir: Path) -> None:
    """As in a new process on a new machine: no price book in memory, no price cache on disk."""
    from runctl_jupyter import api, resources
    from runctl_jupyter.costs.pricing import CACHE_FILE

    resources._BOOKS.clear()  # noqa: SLF001
    (api.context().cache_dir / CACHE_FILE).unlink(missing_ok=True)


def _timed_list(regions: str, repeat: int = 5) -> float:
    from runctl_jupyter import api, resources

    samples = []
    for _ in range(repeat):
        ctx = api.context()
        t = time.perf_counter()
        resources.list_frame(ctx, regions=regions)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def run(bench: Bench) -> list[Metric]:
    from runctl_jupyter import api, resources
    from runctl_jupyter.sandbox import control

    ctx = bench.context()
    control.set_delays(bench.info, pending=0.05, stopping=0.05, ssm_online=0.05)
    t = time.perf_counter()
    _populate(ctx, ctx.now().replace(microsecond=0).isoformat())
    _populate(ctx, ctx.now().replace(microsecond=0).isoformat(), SMALL_REGIONS, SMALL_PER_REGION)
    populate_s = time.perf_counter() - t
    time.sleep(0.5)  # let pending → running
    all_regions = ",".join(REGIONS)

    _fresh_books(bench.sandbox_dir)
    cold = api.context()
    t = time.perf_counter()
    df = resources.list_frame(cold, regions=all_regions)
    cold_s = time.perf_counter() - t
    cold_calls = dict(cold.calls)  # now: the shared book keeps using this Context's clients later
    pairs = {(r, ty) for r in REGIONS for ty in TYPES}
    warm = api.context()
    book = resources.price_book(warm)
    calls_before = book.api_calls
    t = time.perf_counter()
    resources.list_frame(warm, regions=all_regions)
    warm_s = time.perf_counter() - t
    warm_pricing = book.api_calls - calls_before

    resources.list_frame(api.context(), regions=",".join(SMALL_REGIONS))  # their prices, before the latency
    control.set_faults(bench.info, latency_ms=100)
    try:
        one = _timed_list("us-east-1")
        four = _timed_list(all_regions)
        small_one = _timed_list(SMALL_REGIONS[0])
        small_four = _timed_list(",".join(SMALL_REGIONS))
    finally:
        control.set_faults(bench.info, latency_ms=0, throttle=0.0, drop=0.0, reset=True)

    rows = len(df)
    per_region = cold_calls["ec2.DescribeInstances"] / len(REGIONS)
    group = f"resources ({rows:,} instances x {len(REGIONS)} regions)"
    return [
        Metric("DescribeInstances calls per region", per_region, "", 1, anchor=ANCHOR, group=group,
               note=f"{rows} rows; DescribeVolumes per region: {cold_calls['ec2.DescribeVolumes'] / len(REGIONS):g}"),
        Metric("Pricing API calls, cold, per distinct (region, type)",
               round(cold_calls["pricing.GetProducts"] / len(pairs), 3), "", 1, group=group,
               note=f"{cold_calls['pricing.GetProducts']} calls for {len(pairs)} pairs"),
        Metric("Pricing API calls, warm", warm_pricing, "", 0, group=group,
               note="PriceBook.api_calls (the book is shared per process, like a kernel's)"),
        Metric("resources list, cold: wall time", round(cold_s * 1000), "ms", None, group=group),
        Metric("resources list, warm: wall time", round(warm_s * 1000), "ms", None, group=group),
        Metric("100 ms/call latency: 4 regions / 1 region wall time", round(four / one, 2), "x", 1.5, group=group,
               anchor="4x if regions are queried one after another",
               note=f"1 region {one * 1000:.0f} ms, 4 regions {four * 1000:.0f} ms (sandbox-bound, see BENCHMARKS.md)"),
        Metric("100 ms/call latency, 25 instances/region: 4 regions / 1 region", round(small_four / small_one, 2), "x",
               1.5, group=group, anchor="4x if regions are queried one after another",
               note=f"1 region {small_one * 1000:.0f} ms, 4 regions {small_four * 1000:.0f} ms"),
        Metric("setup: run_instances 4 x 250", round(populate_s, 1), "s", None, group=group),
    ]
