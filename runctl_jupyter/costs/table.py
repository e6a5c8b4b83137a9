"""`%runctl resources` as a plain pandas DataFrame, plus summary, filtering, sorting and export.

Columns (dtypes): instance_id, name, instance_type, state, lifecycle, project, region, az (str);
launched (datetime64[ns, UTC]); uptime (timedelta64[ns], since the last start, 0 unless running);
usd_per_hour, accrued_usd, ebs_usd_per_hour (float64, NaN = unknown); accrued_basis ("ledger" |
"since last start" | "since created"); price_source, price_as_of, training, last_checkpoint (str);
warnings (str, the warning texts joined by newlines, "" for none); kind ("instance" | "snapshot"),
snapshot_id (str, None on instance rows); size_gb (float64: attached EBS GB, or the snapshot's
volume size); created (datetime64[ns, UTC]: when a snapshot was taken, NaT on instance rows);
storage_usd_per_month (float64: EBS storage, the attached volumes' or the snapshot's); gpu (str: the
type's NVIDIA GPUs, e.g. "1× H200", None for other types: from the type, so listing costs no SSM
call — utilisation is in `aws status`); fleet (str: the fleet an instance is a node of, None
otherwise; a fleet's rows are kept together, see :mod:`.fleets`).

A snapshot row (runctl's EBS snapshots, see :mod:`.ebs_snapshots`) keeps every column's meaning:
``instance_id`` is the instance its disk came from, ``state`` the snapshot's (``completed``), the
compute columns (``instance_type``, ``launched``, ``uptime``, ``usd_per_hour``) are empty, and its
storage counts in ``ebs_usd_per_hour`` and ``accrued_usd`` like a stopped instance's volumes.

``df.attrs``: ``runctl_kind = "resources"`` (lets a display formatter recognise the frame) and
``runctl_warnings = {instance_id: (CostWarning, …)}`` of the instance rows (styling reads it;
recomputed if missing; snapshot rows never warn).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import Step, UsageError
from .rows import CostRow
from .warnings import CostWarning, Thresholds, warnings_for

COLUMNS = ["instance_id", "name", "instance_type", "gpu", "state", "lifecycle", "project", "region", "az",
           "launched", "uptime", "usd_per_hour", "accrued_usd", "accrued_basis", "ebs_usd_per_hour",
           "price_source", "price_as_of", "training", "last_checkpoint", "warnings",
           "kind", "snapshot_id", "size_gb", "created", "storage_usd_per_month", "fleet"]
MONEY_COLUMNS = ["usd_per_hour", "accrued_usd", "ebs_usd_per_hour", "storage_usd_per_month"]
_TEXT_COLUMNS = [c for c in COLUMNS if c not in (*MONEY_COLUMNS, "launched", "uptime", "size_gb", "created")]
_NULLABLE_TEXT = ("name", "project", "az", "training", "last_checkpoint", "warnings", "snapshot_id", "gpu",
                  "fleet")
_ROW_FIELDS = {f.name for f in fields(CostRow)}

ATTR_KIND = "runctl_kind"
ATTR_WARNINGS = "runctl_warnings"

# sort key → (column, ascending)
SORT_KEYS: dict[str, tuple[str, bool]] = {
    "cost": ("accrued_usd", False),
    "hourly": ("usd_per_hour", False),
    "uptime": ("uptime", False),
    "type": ("instance_type", True),
    "state": ("state", True),
    "launched": ("launched", False),
    "id": ("instance_id", True),
}
EXPORT_FORMATS = ("csv", "html", "json")


class WarningIndex(Mapping[str, tuple[CostWarning, ...]]):
    """``{instance_id: warnings}``, immutable. pandas deep-copies ``df.attrs`` on every operation;
    this is shared instead (``__deepcopy__`` returns itself), so big frames stay fast."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, tuple[CostWarning, ...]] | None = None):
        self._d = dict(d or {})

    def __getitem__(self, key: str) -> tuple[CostWarning, ...]:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __copy__(self) -> WarningIndex:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> WarningIndex:
        return self

    def __repr__(self) -> str:
        return f"WarningIndex({len(self._d)} instances)"


def _as_warning(w: Any) -> CostWarning:
    if isinstance(w, CostWarning):
        return w
    if isinstance(w, Mapping):
        return CostWarning(w["kind"], w["text"])
    kind, text = w
    return CostWarning(kind, text)


def _as_dict(row: CostRow | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(row, CostRow):
        d = {f: getattr(row, f) for f in _ROW_FIELDS}
    else:
        d = dict(row)
        unknown = set(d) - _ROW_FIELDS
        if unknown:
            raise ValueError(f"unknown CostRow field(s): {', '.join(sorted(unknown))}")
    d["warnings"] = tuple(_as_warning(w) for w in d.get("warnings") or ())
    return d


def frame(rows: Iterable[CostRow | Mapping[str, Any]]) -> pd.DataFrame:
    """The resources DataFrame (see the module docstring for columns and dtypes)."""
    items = [_as_dict(r) for r in rows]
    cols: dict[str, Any] = {}
    for c in _TEXT_COLUMNS:
        if c == "warnings":
            continue
        cols[c] = pd.Series([d.get(c) for d in items], dtype=object)
    for c in ("launched", "created"):
        cols[c] = pd.to_datetime(pd.Series([d.get(c) for d in items], dtype=object),
                                 utc=True).astype("datetime64[ns, UTC]")
    cols["size_gb"] = pd.Series([d.get("size_gb") for d in items], dtype="float64")
    cols["uptime"] = pd.to_timedelta(pd.Series([d.get("uptime_seconds") or 0 for d in items],
                                               dtype="int64"), unit="s").astype("timedelta64[ns]")
    for c in MONEY_COLUMNS:
        cols[c] = pd.Series([d.get(c) for d in items], dtype="float64")
    cols["warnings"] = pd.Series(["\n".join(w.text for w in d["warnings"]) for d in items], dtype=object)
    df = pd.DataFrame(cols, columns=COLUMNS)
    for c in _TEXT_COLUMNS:
        if c not in _NULLABLE_TEXT:
            df[c] = df[c].fillna("instance" if c == "kind" else "")
    df.attrs[ATTR_KIND] = "resources"
    df.attrs[ATTR_WARNINGS] = WarningIndex({d["instance_id"]: d["warnings"] for d in items
                                            if d.get("kind") != "snapshot"})
    return df


def _is_snapshot(df: pd.DataFrame) -> pd.Series:
    """Which rows are snapshots (a frame from before snapshot rows has none)."""
    if "kind" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["kind"].eq("snapshot")


def row_warnings(df: pd.DataFrame, thresholds: Thresholds | None = None) -> list[tuple[CostWarning, ...]]:
    """Warnings per row, in row order: from ``df.attrs`` or, if absent, recomputed from the row."""
    known: Mapping[str, tuple[CostWarning, ...]] = df.attrs.get(ATTR_WARNINGS) or {}
    out: list[tuple[CostWarning, ...]] = []
    for snap, iid, state, up, acc, hr in zip(_is_snapshot(df), df["instance_id"], df["state"], df["uptime"],
                                             df["accrued_usd"], df["usd_per_hour"], strict=True):
        if snap:  # storage only: the warnings are about running instances
            out.append(())
            continue
        if iid in known:
            out.append(tuple(known[iid]))
            continue
        secs = up.total_seconds() if pd.notna(up) else 0.0
        out.append(tuple(warnings_for(state, secs, None if pd.isna(acc) else float(acc),
                                      None if pd.isna(hr) else float(hr), thresholds)))
    return out


def summary(df: pd.DataFrame, by: str | Sequence[str] = ("instance_type", "project", "state")) -> pd.DataFrame:
    """Grouped: instances, running, snapshots, $/hr of the running ones, accrued total (flat columns).

    Snapshot rows count as snapshots, not instances; their storage so far is in the accrued total.
    """
    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise UsageError(f"Cannot group by unknown column '{missing[0]}'.",
                         [Step("Use columns of the resources table, e.g. instance_type, project, state")])
    work = df[keys].copy()
    running = df["state"].eq("running")
    snapshots = _is_snapshot(df)
    work["instances"] = (~snapshots).astype("int64")
    work["running"] = running.astype("int64")
    work["snapshots"] = snapshots.astype("int64")
    work["usd_per_hour"] = df["usd_per_hour"].where(running, 0.0)
    work["accrued_usd"] = df["accrued_usd"]
    out = (work.groupby(keys, dropna=False, sort=True)
           .agg(instances=("instances", "sum"), running=("running", "sum"), snapshots=("snapshots", "sum"),
                usd_per_hour=("usd_per_hour", _total_or_unknown),
                accrued_usd=("accrued_usd", _total_or_unknown))
           .reset_index())
    return out


def _total_or_unknown(values: pd.Series) -> float:
    """The sum, or NaN (shown as unknown) when a price in the group is unknown: never a quiet $0."""
    return float(values.sum()) if values.notna().all() else float("nan")


def _as_set(value: str | Iterable[str]) -> set[str]:
    return {value} if isinstance(value, str) else set(value)


def filter_rows(df: pd.DataFrame, state: str | Iterable[str] | None = None,
                project: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Rows whose state / project is the one given (or one of those given); attrs kept."""
    mask = pd.Series(True, index=df.index)
    if state is not None:
        mask &= df["state"].isin(_as_set(state))
    if project is not None:
        mask &= df["project"].isin(_as_set(project))
    return df[mask]


def sort_rows(df: pd.DataFrame, key: str, descending: bool | None = None) -> pd.DataFrame:
    """Sort by ``cost|hourly|uptime|type|state|launched|id`` (money/time: largest first); stable,
    unknown values last, ties broken by instance ID."""
    if key not in SORT_KEYS:
        raise UsageError(f"Unknown sort key '{key}'.", [Step(f"Use one of: {', '.join(SORT_KEYS)}")])
    column, ascending = SORT_KEYS[key]
    if descending is not None:
        ascending = not descending
    by = [column] if column == "instance_id" else [column, "instance_id"]
    return df.sort_values(by, ascending=[ascending] + [True] * (len(by) - 1), kind="mergesort",
                          na_position="last")


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out.insert(out.columns.get_loc("uptime"), "uptime_seconds",
               (out["uptime"].dt.total_seconds()).astype("int64"))
    return out.drop(columns=["uptime"])


def export(df: pd.DataFrame, fmt: str | None, path: str | Path) -> Path:
    """Write the table as csv / html (the styled table) / json (records, ISO dates); returns the path.

    ``fmt=None`` takes the format from the file's suffix. Uptime is written as ``uptime_seconds``.
    """
    p = Path(path)
    fmt = (fmt or p.suffix.lstrip(".")).lower()
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"Unknown export format '{fmt}'.", [Step(f"Use one of: {', '.join(EXPORT_FORMATS)}")])
    try:
        if fmt == "csv":
            _plain(df).to_csv(p, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        elif fmt == "json":
            _plain(df).to_json(p, orient="records", date_format="iso", date_unit="s", indent=1)
        else:
            from .styling import style

            p.write_text(style(df).to_html(), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot write the table to {p}: {exc.strerror or exc}.",
                         [Step(f"Check that the folder {p.parent} exists and that you may write there"),
                          Step("Or pass another --export-file PATH")]) from exc
    return p

