"""How runctl's DataFrames show: in a notebook once, styled, while the value stays a plain DataFrame;
in a shell as text (:func:`shell_text`).

Frames runctl returns carry ``df.attrs["runctl_kind"]``; an IPython HTML formatter registered by
name (so pandas is not imported at ``%load_ext``) renders those through the cost table's Styler.
Every other DataFrame keeps pandas' own HTML. runctl's HTML carries its styles inline (JupyterLab keeps
them in an untrusted notebook, where it drops ``<style>``) and the classes that keep MathJax from
typesetting ``$0.02 … $5`` as a formula (:data:`MATHJAX_IGNORE`).
"""

from __future__ import annotations

from typing import Any

MATHJAX_IGNORE = "tex2jax_ignore mathjax_ignore"  # MathJax 2 and 3 leave an element with either class alone


def _html(df: Any) -> str | None:
    kind = df.attrs.get("runctl_kind")
    if kind == "resources" and _is_full_resources_frame(df):
        return resources_html(df)
    if kind and kind != "resources":
        from .costs.styling import InlineStyler

        styler = InlineStyler(df, uuid=f"runctl-{kind}").hide(axis="index")
        if "usd_per_month" in df.columns:  # S3 storage: cents and fractions of them
            from .storage import usd_cell

            styler = styler.format({"usd_per_month": usd_cell})
        caption = df.attrs.get("runctl_caption")
        footer = df.attrs.get("runctl_footer") or []
        if caption or footer:
            import html

            lines = [caption] if caption else []  # (the caption as before; footer lines are plain text)
            styler = styler.set_caption("<br>".join([*lines, *(html.escape(line) for line in footer)]))
        return styler.to_html()
    return df._repr_html_()


def resources_html(df: Any, columns: Any = None) -> str:
    """The cost table, styled (warned rows highlighted), as HTML; ``columns``: only these (a panel's short view)."""
    from .costs import style

    return style(df, df.attrs.get("runctl_caption_info"), thresholds=df.attrs.get("runctl_thresholds"),
                 columns=columns).to_html()


def usd(value: float) -> str:
    """Dollars as the cost table shows them."""
    from .costs import fmt

    return fmt.usd(value)


def hourly(value: float) -> str:
    """A $/hr price as the cost table shows it."""
    from .costs import fmt

    return fmt.hourly(value)


def _is_full_resources_frame(df: Any) -> bool:
    # attrs survive df[[...]] / df.head(): only the whole table is styled, a selection shows plain.
    from .costs.table import COLUMNS

    return list(df.columns) == list(COLUMNS)


def register_formatters(ipython: Any) -> None:
    formatter = ipython.display_formatter.formatters["text/html"]
    # Registered by name so pandas is not imported here; pandas ≥ 3 reports its module as "pandas".
    for module in ("pandas.core.frame", "pandas"):
        formatter.for_type_by_name(module, "DataFrame", _html)


def shell_text(df: Any) -> str:
    """A runctl DataFrame as the shell prints it: the cost table's text, or the frame with its money
    and dates formatted and the lines under it (totals, world, next steps)."""
    if df.attrs.get("runctl_kind") == "resources":
        from .costs import render_text

        return render_text(df)
    footer = df.attrs.get("runctl_footer")
    if footer is None:
        return df.to_string(index=False)
    from .storage import text_formatters

    table = df.to_string(index=False, formatters=text_formatters(df))
    return "\n".join([*([] if df.empty else [table]), *footer])  # an empty table shows just the footer
