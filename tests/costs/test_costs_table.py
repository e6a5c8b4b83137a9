from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from costs_rowsdata import make_row, mixed_rows

from runctl_jupyter.costs.table import (
    ATTR_KIND,
    ATTR_WARNINGS,
    COLUMNS,
    export,
    filter_rows,
    frame,
    row_warnings,
    sort_rows,
    summary,
)
from runctl_jupyter.errors import UsageError


def test_frame_columns_and_dtypes() -> None:
    df = frame(mixed_rows())
    assert list(df.columns) == COLUMNS
    assert str(df["launched"].dtype) == "datetime64[ns, UTC]"
    assert str(df["uptime"].dtype) == "timedelta64[ns]"
    for c in ("usd_per_hour", "accrued_usd", "ebs_usd_per_hour"):
        assert df[c].dtype == "float64"
    assert df.loc[1, "uptime"] == pd.Timedelta(hours=25, minutes=30)
    assert df.loc[1, "warnings"] == "⚠️  Running 25 hours ($0.27 accumulated)"
    assert df.loc[0, "warnings"] == ""
    assert df.attrs[ATTR_KIND] == "resources"
    assert [w.kind for w in df.attrs[ATTR_WARNINGS]["i-00000000000000003"]] == ["high_cost"]


def test_frame_from_dicts_and_empty() -> None:
    df = frame([{"instance_id": "i-1", "instance_type": "t3.micro", "state": "running", "region": "r",
                 "usd_per_hour": None, "warnings": [("high_cost", "x")]}])
    assert pd.isna(df.loc[0, "usd_per_hour"]) and df.loc[0, "warnings"] == "x"
    empty = frame([])
    assert list(empty.columns) == COLUMNS and len(empty) == 0
    with pytest.raises(ValueError, match="unknown CostRow field"):
        frame([{"instance_id": "i-1", "colour": "red"}])


def test_warnings_recomputed_when_attrs_are_lost() -> None:
    df = frame(mixed_rows())
    plain = pd.DataFrame(df.to_dict("list"))  # a user's copy without attrs
    assert [tuple(w.kind for w in ws) for ws in row_warnings(plain)] == [
        (), ("long_running",), ("high_cost",), ()]


def test_summary() -> None:
    s = summary(frame(mixed_rows()))
    assert list(s.columns) == ["instance_type", "project", "state", "instances", "running", "snapshots",
                               "usd_per_hour", "accrued_usd"]
    p3 = s[s["instance_type"] == "p3.2xlarge"].set_index("state")
    assert p3.loc["running", "usd_per_hour"] == pytest.approx(3.06)
    assert p3.loc["stopped", "usd_per_hour"] == 0  # stopped instances add no compute $/hr
    by_type = summary(frame(mixed_rows()), by="instance_type").set_index("instance_type")
    assert by_type.loc["t3.micro", "running"] == 2
    assert by_type.loc["p3.2xlarge", "accrued_usd"] == pytest.approx(52.34)
    with pytest.raises(UsageError):
        summary(frame(mixed_rows()), by="colour")


def test_filter_rows() -> None:
    df = frame(mixed_rows())
    assert list(filter_rows(df, state="stopped")["instance_id"]) == ["i-00000000000000004"]
    assert len(filter_rows(df, state=["running", "stopped"], project="bert")) == 2
    assert filter_rows(df, project="bert").attrs[ATTR_KIND] == "resources"


@pytest.mark.parametrize(("key", "first"), [
    ("cost", "i-00000000000000004"), ("hourly", "i-00000000000000003"), ("uptime", "i-00000000000000002"),
    ("type", "i-00000000000000003"), ("state", "i-00000000000000001"), ("id", "i-00000000000000001"),
    ("launched", "i-00000000000000001"),
])
def test_sort_rows(key: str, first: str) -> None:
    assert sort_rows(frame(mixed_rows()), key)["instance_id"].iloc[0] == first


def test_sort_puts_unknown_prices_last() -> None:
    df = frame([make_row("i-a", hourly=None), make_row("i-b", hourly=0.01)])
    assert list(sort_rows(df, "hourly")["instance_id"]) == ["i-b", "i-a"]


def test_unknown_sort_key_is_a_usage_error() -> None:
    with pytest.raises(UsageError) as err:
        sort_rows(frame(mixed_rows()), "x")
    assert err.value.message == "Unknown sort key 'x'."
    assert err.value.exit_code == 2
    assert err.value.steps[0].text == "Use one of: cost, hourly, uptime, type, state, launched, id"


def test_export(tmp_path: Path) -> None:
    df = frame(mixed_rows())
    csv = pd.read_csv(export(df, "csv", tmp_path / "r.csv"))
    assert csv.loc[1, "uptime_seconds"] == 25 * 3600 + 1800
    records = json.loads(export(df, None, tmp_path / "r.json").read_text())
    assert records[0]["instance_id"] == "i-00000000000000001"
    assert records[0]["launched"].startswith("2026-11-05T11:00:00")
    html = export(df, "html", tmp_path / "r.html").read_text()
    assert "T_runctl" in html
    with pytest.raises(UsageError, match="Unknown export format 'xlsx'"):
        export(df, "xlsx", tmp_path / "r.xlsx")


@pytest.mark.parametrize("fmt", ["csv", "json", "html"])
def test_an_export_to_a_folder_that_does_not_exist_is_an_error_with_steps(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "no" / "such" / f"x.{fmt}"
    with pytest.raises(UsageError) as err:
        export(frame(mixed_rows()), fmt, target)
    assert err.value.message.startswith(f"Cannot write the table to {target}: ")
    assert f"Check that the folder {target.parent} exists" in err.value.render()


def test_plot_returns_a_figure() -> None:
    from matplotlib.figure import Figure

    from runctl_jupyter.costs.plot import plot

    fig = plot(frame(mixed_rows()))
    assert isinstance(fig, Figure) and len(fig.axes) == 2


def test_plot_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from runctl_jupyter.costs.plot import plot
    from runctl_jupyter.errors import RunctlError

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(RunctlError, match="needs matplotlib") as err:
        plot(frame(mixed_rows()))
    assert "pip install" in err.value.render()


def test_warning_index_is_shared_not_deep_copied() -> None:
    import copy

    df = frame(mixed_rows())
    idx = df.attrs[ATTR_WARNINGS]
    assert copy.deepcopy(idx) is idx  # pandas deep-copies attrs on every operation
    assert sort_rows(df, "cost").attrs[ATTR_WARNINGS] is idx
    assert dict(idx) == {r.instance_id: r.warnings for r in mixed_rows()}
