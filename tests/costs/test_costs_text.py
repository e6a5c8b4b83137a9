from __future__ import annotations

from costs_rowsdata import make_row, mixed_rows

from runctl_jupyter.costs.table import frame
from runctl_jupyter.costs.text import render_text
from runctl_jupyter.costs.warnings import Thresholds


def test_docs_example_layout_exactly() -> None:
    # runctl docs (000): 11 running t3.micro at $0.0104/hr, the first up 25h 30m with $0.26 on record.
    # Its "High cost" line at $0.26 only appears with a lowered threshold, as here.
    low = Thresholds(accrued_usd=0.25)
    rows = [make_row("i-xxx", up=25 * 3600 + 30 * 60, accrued=0.26, thresholds=low)]
    rows += [make_row(f"i-{n:017x}", up=600) for n in range(10)]
    text = render_text(frame(rows))
    assert text.splitlines()[:4] == [
        "  t3.micro (11 running, $0.1144/hr)",
        "    i-xxx  running  (25h 30m)  $0.0104/hr ($0.26 total)",
        "      ⚠️  Running 25 hours ($0.26 accumulated)",
        "      ⚠️  High cost: $0.26 accumulated",
    ]


def test_seconds_shown_as_in_the_footguns_doc() -> None:
    # runctl docs (003): "i-xxx  running  (6h 18m 13s)  $0.0104/hr ($0.07 total)"
    text = render_text(frame([make_row("i-xxx", up=6 * 3600 + 18 * 60 + 13)]))
    assert text.splitlines()[1] == "    i-xxx  running  (6h 18m 13s)  $0.0104/hr ($0.07 total)"


def test_groups_stopped_ebs_and_totals() -> None:
    text = render_text(frame(mixed_rows()))
    assert text.splitlines() == [
        "  t3.micro (2 running, $0.0208/hr)",
        "    i-00000000000000001  running  (1h 0m)  $0.0104/hr ($0.01 total)",
        "    i-00000000000000002  running  (25h 30m)  $0.0104/hr ($0.27 total)",
        "      ⚠️  Running 25 hours ($0.27 accumulated)",
        "  p3.2xlarge (1 running, $3.0600/hr)",
        "    i-00000000000000003  running  (4h 0m)  $3.0600/hr ($12.34 total)",
        "      ⚠️  High cost: $12.34 accumulated",
        "    i-00000000000000004  stopped  EBS $0.0110/hr (volumes still bill) ($40.00 total)",
        "  Total: 3 running · $3.0808/hr · $52.62 accrued · prices: snapshot (2026-11-01)"
        " · stopped volumes $0.0110/hr",
    ]


def test_since_last_start_and_unknown_price() -> None:
    text = render_text(frame([make_row("i-1", basis="since last start"), make_row("i-2", hourly=None)]))
    assert "    i-1  running  (1h 0m)  $0.0104/hr ($0.01 since last start)" in text
    assert "    i-2  running  (1h 0m)  $?/hr" in text


def test_empty() -> None:
    assert render_text(frame([])).splitlines()[0] == "  No instances."
