"""The resources DataFrame as a pandas Styler: warned rows highlighted, money formatted, a caption.

Long-running rows are amber, high-cost / high-hourly rows red (red wins); the cell that triggered a
warning is stronger and bold. The uuid is fixed ("runctl") so notebook output is stable.

What a reader sees must not depend on how the notebook is opened:
- **Inline styles.** JupyterLab drops ``<style>`` elements from untrusted outputs (a guide opened
  by a new user, a notebook from someone else) but keeps the ``style`` attributes its sanitizer
  allows (``background-color``, ``font-weight``, ``white-space``, ``caption-side``, ``text-align``).
  :class:`InlineStyler` renders pandas' own cell styles (``Styler.apply``) and table styles
  (``set_table_styles``) into the cells' and caption's ``style`` attributes, with no ``<style>``
  block, so the HTML reads the same trusted or not.
- **No maths.** ``$0.0104/hr · $0.02`` would be typeset by MathJax as a formula; the table is
  rendered with pandas' ``styler.html.mathjax = False``, which adds ``tex2jax_ignore mathjax_ignore``
  to its classes (``MATHJAX_IGNORE``, also used by the other HTML runctl shows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from . import fmt
from .caption import CaptionInfo, caption_text
from .table import row_warnings
from .warnings import Thresholds

AMBER_ROW = "#fff3cd"
AMBER_CELL = "#ffd966"
RED_ROW = "#f8d7da"
RED_CELL = "#f1959f"
MATHJAX_IGNORE = "tex2jax_ignore mathjax_ignore"  # MathJax 2 and 3 skip an element with either class

_CELL_FOR_KIND = {"long_running": ("uptime", AMBER_CELL), "high_cost": ("accrued_usd", RED_CELL),
                  "high_hourly": ("usd_per_hour", RED_CELL)}

# What a reader looks for first: which rows warn and what they cost; then the rest, in the frame's order.
FIRST_COLUMNS = ("instance_id", "name", "instance_type", "gpu", "state", "warnings", "usd_per_hour", "accrued_usd",
                 "uptime")
NOWRAP_COLUMNS = ("instance_id", "snapshot_id", "launched", "created")  # IDs and dates on one line

# pandas' html_table.tpl with each cell's styles (Styler.apply / map: the `cellstyle` pandas would put in a
# <style> block) and the table styles for `caption` and `td` (set_table_styles) written into style attributes.
_TABLE_TEMPLATE = """\
{%- set cell_css = {} -%}
{%- for s in cellstyle -%}{%- for selector in s.selectors -%}
{%- set _ = cell_css.update({selector: s.props}) -%}
{%- endfor -%}{%- endfor -%}
{%- set shared = {} -%}
{%- for t in table_styles -%}
{%- set _ = shared.update({t.selector: (shared.get(t.selector, []) + (t.props | list))}) -%}
{%- endfor -%}
{%- macro css(props) -%}{# one declaration per property: a cell's own style wins over the table's #}
{%- set last = {} -%}{%- for p in props -%}{%- set _ = last.update({p[0]: p[1]}) -%}{%- endfor -%}
{%- for name, value in last.items() -%}{{ name }}: {{ value }};{% if not loop.last %} {% endif %}{%- endfor -%}
{%- endmacro -%}
<table id="T_{{uuid}}"{% if table_attributes %} {{table_attributes | trim}}{% endif %}>
{% if caption and caption is string %}
  <caption{% if shared.caption %} style="{{ css(shared.caption) }}"{% endif %}>{{caption}}</caption>
{% endif %}
  <thead>
{% for r in head %}
    <tr>
{% for c in r %}
{% if c.is_visible != False %}
      <{{c.type}} {%- if c.id is defined %} id="T_{{uuid}}_{{c.id}}" {%- endif %} class="{{c.class}}"{% if shared.th %} style="{{ css(shared.th) }}"{% endif %} {{c.attributes}}>{{c.display_value}}</{{c.type}}>
{% endif %}
{% endfor %}
    </tr>
{% endfor %}
  </thead>
  <tbody>
{% for r in body %}
    <tr>
{% for c in r %}
{% if c.is_visible != False %}
{% set props = (shared.td or []) + (cell_css.get(c.id, []) | list) if c.type == "td" else [] %}
      <{{c.type}} {%- if c.id is defined %} id="T_{{uuid}}_{{c.id}}" {%- endif %} class="{{c.class}}"{% if props %} style="{{ css(props) }}"{% endif %} {{c.attributes}}>{{c.display_value}}</{{c.type}}>
{% endif %}
{% endfor %}
    </tr>
{% endfor %}
  </tbody>
</table>
"""


class InlineStyler(Styler):
    """A pandas Styler whose HTML carries every style inline (see the module docstring) and is left
    alone by MathJax. Use it as ``InlineStyler(df)`` where ``df.style`` would be used."""

    env = jinja2.Environment(loader=jinja2.ChoiceLoader([
        jinja2.DictLoader({"runctl_table.tpl": _TABLE_TEMPLATE, "runctl_no_style.tpl": ""}), Styler.loader]),
        trim_blocks=True)
    template_html_table = env.get_template("runctl_table.tpl")
    template_html_style = env.get_template("runctl_no_style.tpl")

    def to_html(self, *args: Any, **kwargs: Any) -> Any:
        with pd.option_context("styler.html.mathjax", False):
            return super().to_html(*args, **kwargs)

    def _repr_html_(self) -> str | None:
        with pd.option_context("styler.html.mathjax", False):
            return super()._repr_html_()


def _nowrap(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame("white-space: nowrap", index=df.index, columns=df.columns)


def _launched(ts: pd.Timestamp) -> str:
    return "" if pd.isna(ts) else ts.strftime("%Y-%m-%d %H:%M UTC")


def _size(gb: float) -> str:
    return "" if pd.isna(gb) else f"{gb:g}"


def _uptime(td: pd.Timedelta) -> str:
    return "" if pd.isna(td) or td.total_seconds() == 0 else fmt.uptime(td.total_seconds())


def display_order(columns: Sequence[str]) -> list[str]:
    """The columns as the styled table shows them: :data:`FIRST_COLUMNS` first, then the rest as they are."""
    first = [c for c in FIRST_COLUMNS if c in columns]
    return first + [c for c in columns if c not in first]


def style(df: pd.DataFrame, caption_info: CaptionInfo | None = None, *,
          thresholds: Thresholds | None = None, columns: Sequence[str] | None = None) -> Styler:
    """A Styler over ``df`` (the frame itself is left unchanged), columns in :func:`display_order`.

    ``columns``: show only these (in this order), e.g. a panel's short view; the caption still sums the
    whole frame and the highlight still follows every row's warnings.
    """
    caption = caption_text(df, caption_info)
    warnings_per_row = row_warnings(df, thresholds)
    shown = [c for c in columns if c in df.columns] if columns is not None else display_order(list(df.columns))
    view = df[shown]
    styler = InlineStyler(view, uuid="runctl")
    styler = styler.hide(axis="index")
    styler = styler.apply(_css, axis=None, warnings_per_row=warnings_per_row)
    nowrap = [c for c in NOWRAP_COLUMNS if c in view.columns]
    if nowrap:
        styler = styler.apply(_nowrap, axis=None, subset=nowrap)
    formats: dict[str, Callable[[Any], str]] = {c: fmt.hourly for c in ("usd_per_hour", "ebs_usd_per_hour")
                                                if c in view.columns}
    for c in ("accrued_usd", "storage_usd_per_month"):
        if c in view.columns:
            formats[c] = fmt.usd
    if "launched" in view.columns:
        formats["launched"] = _launched
    if "uptime" in view.columns:
        formats["uptime"] = _uptime
    styler = styler.format(formats, na_rep="—")  # "—": unknown (a price runctl does not know)
    # Blank, not "—", where a column does not apply: when a snapshot was taken (instance rows), its size.
    blank = {c: f for c, f in (("created", _launched), ("size_gb", _size)) if c in view.columns}
    for c, f in blank.items():
        styler = styler.format(f, subset=[c], na_rep="")
    plain = [c for c in view.columns if c not in formats and c not in blank]
    if plain:
        styler = styler.format(na_rep="", subset=plain)
    if "kind" in df.columns and df["kind"].eq("snapshot").any():  # a snapshot has no compute columns
        compute = [c for c in ("launched", "usd_per_hour") if c in view.columns]
        if compute:
            styler = styler.format(na_rep="", subset=pd.IndexSlice[df.index[df["kind"].eq("snapshot")], compute])
    styler = styler.set_caption(caption)
    styler = styler.set_table_attributes('class="runctl-resources"')
    return styler.set_table_styles([
        {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold;"},
        {"selector": "td", "props": "white-space: pre-line;"},
    ])


def _css(view: pd.DataFrame, warnings_per_row: list[Any]) -> pd.DataFrame:
    """Background (and bold) per cell of the shown columns, from the warnings of the whole frame's rows."""
    css = np.full(view.shape, "", dtype=object)
    col = {c: i for i, c in enumerate(view.columns)}
    for r, warns in enumerate(warnings_per_row):
        if not warns:
            continue
        kinds = {w.kind for w in warns}
        row_colour = RED_ROW if kinds & {"high_cost", "high_hourly"} else AMBER_ROW
        css[r, :] = f"background-color: {row_colour}"
        for kind in kinds:
            name, colour = _CELL_FOR_KIND[kind]
            if name in col:
                css[r, col[name]] = f"background-color: {colour}; font-weight: bold"
    return pd.DataFrame(css, index=view.index, columns=view.columns)
