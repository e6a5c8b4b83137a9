"""runctl's EBS snapshots in the cost table: a row each, priced per GB-month, in the totals."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from costs_helpers import NOW
from costs_rowsdata import make_row, mixed_rows

from runctl_jupyter.costs.caption import caption_text
from runctl_jupyter.costs.ebs_snapshots import snapshot_rows
from runctl_jupyter.costs.snapshot import load_snapshot
from runctl_jupyter.costs.styling import style
from runctl_jupyter.costs.table import frame, row_warnings, summary
from runctl_jupyter.costs.text import render_text

SNAP = "snap-0123456789abcdef0"
SOURCE = "i-00000000000000003"  # a running, high-cost instance of mixed_rows(): its warning must stay


def _described(snapshot_id: str = SNAP, *, size: int = 100, hours: float = 73.0, tier: str = "standard",
               tags: dict[str, str] | None = None) -> dict:
    """A DescribeSnapshots entry as `terminate --snapshot` leaves it."""
    default = {"runctl:instance": SOURCE, "runctl:project": "bert", "runctl:device": "/dev/xvda",
               "runctl:created": "2026-11-02", "Name": f"runctl {SOURCE} /dev/xvda 2026-11-02"}
    return {"SnapshotId": snapshot_id, "State": "completed", "VolumeSize": size, "StorageTier": tier,
            "StartTime": NOW - timedelta(hours=hours), "OwnerId": "123456789012", "Progress": "100%",
            "Tags": [{"Key": k, "Value": v} for k, v in (default if tags is None else tags).items()]}


def _rows(*described: dict):
    price = load_snapshot().ebs_snapshot_price("us-east-1")
    return snapshot_rows(described, region="us-east-1", now=NOW, gb_month=price, as_of="2026-11-01")


def test_the_price_snapshot_has_snapshot_storage_beside_gp3() -> None:
    prices = load_snapshot()
    assert prices.ebs_snapshot_price("us-east-1") == 0.05  # AWS's standard-tier list price
    assert prices.ebs_snapshot_price("eu-central-1") == 0.054
    assert set(prices.ebs_snapshot_gb_month) == set(prices.ebs_gp3_gb_month)
    assert prices.ebs_snapshot_price("mars-north-1") is None


def test_a_snapshot_row_costs_its_size_per_gb_month_and_accrues_since_it_was_taken() -> None:
    (row,) = _rows(_described(size=100, hours=73))  # 73 h = a tenth of AWS's 730-hour month
    df = frame([*mixed_rows(), row])
    snap = df[df["kind"] == "snapshot"].iloc[0]
    assert (snap["snapshot_id"], snap["instance_id"], snap["project"], snap["state"]) == \
        (SNAP, SOURCE, "bert", "completed")
    assert snap["size_gb"] == 100 and snap["created"] == pd.Timestamp(NOW - timedelta(hours=73))
    assert snap["storage_usd_per_month"] == pytest.approx(5.00)  # 100 GB × $0.05
    assert snap["ebs_usd_per_hour"] == pytest.approx(5.00 / 730)
    assert snap["accrued_usd"] == pytest.approx(0.50) and snap["accrued_basis"] == "since created"
    assert (snap["price_source"], snap["price_as_of"]) == ("snapshot", "2026-11-01")
    assert pd.isna(snap["usd_per_hour"]) and snap["instance_type"] == "" and pd.isna(snap["launched"])
    # instance rows say what kind they are, and keep their warnings though a snapshot names the instance
    assert set(df.loc[df["kind"] == "instance", "instance_id"]) == {r.instance_id for r in mixed_rows()}
    assert [w.kind for w in row_warnings(df)[2]] == ["high_cost"] and row_warnings(df)[4] == ()


def test_snapshots_count_in_the_totals_where_stored_costs_are_summed() -> None:
    df = frame([*mixed_rows(), *_rows(_described(size=100), _described("snap-0123456789abcdef1", size=20))])
    assert caption_text(df) == ("3 running · $3.0808/hr · $53.22 accrued · prices: snapshot (2026-11-01)"
                                " · stopped volumes $0.0110/hr · 2 snapshots 120 GB $6.00/month")
    by_project = summary(df, by="project").set_index("project")
    assert by_project.loc["bert", ["instances", "running", "snapshots"]].tolist() == [2, 1, 2]
    assert by_project.loc["bert", "accrued_usd"] == pytest.approx(12.34 + 40.0 + 0.60)
    text = render_text(df).splitlines()
    assert text[-4:-1] == [
        "  EBS snapshots (2, 120 GB, $6.00/month)",
        f"    {SNAP}  from {SOURCE}  project bert  100 GB  created 2026-11-02  $5.00/month ($0.50 so far)",
        f"    snap-0123456789abcdef1  from {SOURCE}  project bert  20 GB  created 2026-11-02  $1.00/month ($0.10 so far)",
    ]
    html = style(df).to_html()
    assert ">$5.00</td>" in html and ">2026-11-02 11:00 UTC</td>" in html


def test_only_runctls_snapshots_and_an_unknown_price_is_never_zero() -> None:
    rows = _rows(_described(tags={"Name": "someone else's"}),  # not runctl's: no runctl:instance tag
                 _described("snap-0123456789abcdef1", tier="archive"))
    assert [r.snapshot_id for r in rows] == ["snap-0123456789abcdef1"]
    df = frame([make_row("i-00000000000000001"), *rows])
    assert df.loc[1, "price_source"] == "unknown" and pd.isna(df.loc[1, "accrued_usd"])
    assert caption_text(df).endswith("prices: snapshot (2026-11-01), unknown · 1 snapshot 100 GB $?/month")
    assert "  EBS snapshots (1, 100 GB, price unknown)" in render_text(df).splitlines()


def test_a_policy_without_describe_snapshots_leaves_them_out_and_says_so(stubbed) -> None:
    from runctl_jupyter import resources
    from runctl_jupyter.costs.caption import CaptionInfo

    factory, stub = stubbed
    stub("ec2", "us-east-1").add_client_error("describe_snapshots", "UnauthorizedOperation",
                                              "You are not authorized to perform this operation.")
    assert resources._snapshots(factory("ec2", "us-east-1"), "us-east-1") is None  # noqa: SLF001
    stub("ec2", "us-east-1").add_response(
        "describe_snapshots", {"Snapshots": [_described()]},
        {"OwnerIds": ["self"], "Filters": [{"Name": "tag-key", "Values": ["runctl:instance"]}], "MaxResults": 1000})
    assert [s["SnapshotId"] for s in resources._snapshots(factory("ec2", "us-east-1"), "us-east-1")] == [SNAP]  # noqa: SLF001
    info = CaptionInfo(world="AWS · 2 regions",
                       notes=("snapshots not listed in eu-west-1 (ec2:DescribeSnapshots not allowed)",))
    assert caption_text(frame(mixed_rows()), info).endswith(
        " · AWS · 2 regions · ⚠️  snapshots not listed in eu-west-1 (ec2:DescribeSnapshots not allowed)")
