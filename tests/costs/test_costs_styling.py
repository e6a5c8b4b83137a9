from __future__ import annotations

import re

import pandas as pd
from costs_rowsdata import make_row, mixed_rows

from runctl_jupyter.costs.caption import CaptionInfo, caption_text
from runctl_jupyter.costs.styling import AMBER_CELL, AMBER_ROW, FIRST_COLUMNS, RED_CELL, RED_ROW, style
from runctl_jupyter.costs.table import COLUMNS, frame


def css_rows(html: str, colour: str) -> set[int]:
    """Row numbers with a cell whose inline style has ``colour`` (no <style> block: see below)."""
    return {int(m.group(1)) for m in re.finditer(r'<td id="T_runctl_row(\d+)_col\d+"[^>]*style="([^"]*)"', html)
            if colour in m.group(2)}


def test_only_warned_rows_are_highlighted() -> None:
    html = style(frame(mixed_rows())).to_html()
    assert css_rows(html, AMBER_ROW) == {1}  # long-running
    assert css_rows(html, AMBER_CELL) == {1}
    assert css_rows(html, RED_ROW) == {2}  # high cost
    assert css_rows(html, RED_CELL) == {2}
    assert "background-color" not in "".join(re.findall(r'<td id="T_runctl_row[03]_[^>]*>', html))


def test_every_style_is_inline_so_an_untrusted_notebook_keeps_it() -> None:
    """JupyterLab drops <style> from untrusted outputs but keeps style attributes (background-color,
    font-weight, white-space, caption-side, text-align): the HTML has no <style> block at all."""
    html = style(frame(mixed_rows())).to_html()
    assert "<style" not in html
    assert '<caption style="caption-side: top; text-align: left; font-weight: bold;">' in html
    warned = re.search(r'<td id="T_runctl_row2_col(\d+)"[^>]*style="([^"]*)"[^>]*>\$12\.34</td>', html)
    assert warned and warned.group(2) == f"white-space: pre-line; background-color: {RED_CELL}; font-weight: bold;"
    # IDs and dates stay on one line; one declaration per property (the cell's own wins).
    first = re.search(r'<td id="T_runctl_row1_col0"[^>]*style="([^"]*)"', html)
    assert first and first.group(1) == f"white-space: nowrap; background-color: {AMBER_ROW};"


def test_dollars_are_not_maths() -> None:
    # pandas' styler.html.mathjax = False: MathJax (2 and 3) skips the whole table, caption included.
    html = style(frame(mixed_rows())).to_html()
    assert '<table id="T_runctl" class="tex2jax_ignore mathjax_ignore runctl-resources">' in html
    assert pd.get_option("styler.html.mathjax") is True  # only while rendering


def test_warnings_and_cost_come_first() -> None:
    df = frame(mixed_rows())
    heads = re.findall(r'class="col_heading level0 col\d+" >([^<]*)</th>', style(df).to_html())
    assert heads[:len(FIRST_COLUMNS)] == list(FIRST_COLUMNS)
    assert sorted(heads) == sorted(df.columns) and list(df.columns) == COLUMNS  # the frame keeps its order
    short = re.findall(r'class="col_heading level0 col\d+" >([^<]*)</th>',
                       style(df, columns=["instance_id", "warnings", "accrued_usd"]).to_html())
    assert short == ["instance_id", "warnings", "accrued_usd"]
    assert css_rows(style(df, columns=["instance_id", "warnings"]).to_html(), AMBER_ROW) == {1}


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
