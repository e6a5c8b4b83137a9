"""S3 Standard storage prices in the dated snapshot (what `storage` and `resources summary` use)."""

from runctl_jupyter.costs import load_snapshot


def test_s3_standard_list_price_per_region():
    prices = load_snapshot()
    assert prices.s3_price("us-east-1") == 0.023  # AWS's S3 Standard list price, first 50 TB
    assert set(prices.s3_standard_gb_month) == set(prices.ebs_gp3_gb_month)  # every region of the file
    assert all(0.02 <= p <= 0.03 for p in prices.s3_standard_gb_month.values())
    assert prices.s3_price("mars-north-1") is None
