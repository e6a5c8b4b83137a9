from __future__ import annotations

import re

from costs_rowsdata import make_row, mixed_rows

from runctl_jupyter.costs.caption import CaptionInfo, caption_text
from runctl_jupyter.costs.styling import AMBER_CELL, AMBER_ROW, RED_CELL, RED_ROW, style
from runctl_jupyter.costs.table import frame


def css_rows(html: str, colour: str) -> set[int]:
    """Row numbers whose cells get ``colour`` in the Styler's CSS."""
    rows: set[int] = set()
    for block in re.finditer(r"((?:#T_runctl_row\d+_col\d+,?\s*)+)\{([^}]*)\}", html):
        if colour in block.group(2):
            rows |= {int(r) for r in re.findall(r"row(\d+)_", block.group(1))}
    return rows


def test_only_warned_rows_are_highlighted() -> None:
    html = style(frame(mixed_rows())).to_html()
    assert css_rows(html, AMBER_ROW) == {1}  # long-running
    assert css_rows(html, AMBER_CELL) == {1}
    assert css_rows(html, RED_ROW) == {2}  # high cost
    assert css_rows(html, RED_CELL) == {2}
    assert "T_runctl_row0_col" not in html.split("</style>")[0]  # fine and stopped rows: no CSS
    assert "T_runctl_row3_col" not in html.split("</style>")[0]


def test_red_wins_over_amber() -> None:
    df = frame([make_row("i-1", up=30 * 3600, hourly=0.5)])  # long-running and $15 accrued
    html = style(df).to_html()
    assert css_rows(html, RED_ROW) == {0} and css_rows(html, AMBER_CELL) == {0}
    assert css_rows(html, AMBER_ROW) == set()


def test_money_and_uptime_formats() -> None:
    html = style(frame(mixed_rows())).to_html()
    assert "$0.0104" in html and "$12.34" in html and "$0.0110" in html
    assert "25h 30m" in html and "2026-11-05 11:00 UTC" in html
    assert 'id="T_runctl"' in html  # fixed uuid: stable notebook output


def test_caption() -> None:
    df = frame(mixed_rows())
    text = caption_text(df)
    assert text == ("3 running · $3.0808/hr · $52.62 accrued · prices: snapshot (2026-11-01)"
                    " · stopped volumes $0.0110/hr")
    assert text in style(df).to_html()
    info = CaptionInfo(price_source="pricing-api", price_date="2026-11-05", world="sandbox")
    assert caption_text(df, info).endswith("prices: pricing-api (2026-11-05) · stopped volumes $0.0110/hr · sandbox")


def test_caption_exact_format_and_mixed_sources() -> None:
    df = frame([make_row("i-1", up=3600, source="pricing-api", as_of="2026-11-05"),
                make_row("i-2", up=7200, hourly=0.4, source="spot-history", as_of="2026-11-05T11:55:00+00:00"),
                make_row("i-3", up=60, hourly=None)])
    assert caption_text(df) == ("3 running · $0.4104/hr · $0.81 accrued · prices: pricing-api (2026-11-05),"
                                " snapshot (2026-11-01), spot-history (2026-11-05) · 1 running without a known price")


def test_style_leaves_the_frame_plain() -> None:
    df = frame(mixed_rows())
    before = df.copy()
    style(df).to_html()
    assert df.equals(before)
