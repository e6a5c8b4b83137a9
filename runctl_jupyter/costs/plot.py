"""Cost charts (matplotlib, imported lazily; optional extra ``runctl-jupyter[plot]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ..errors import RunctlError, Step

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot(df: pd.DataFrame) -> Figure:
    """Two bar charts: $/hr of running instances per type, and accrued cost per project."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RunctlError("Plotting costs needs matplotlib, which is not installed.", [
            Step("Install it: pip install 'runctl-jupyter[plot]' (or pip install matplotlib)"),
            Step("Then run the cell again"),
        ]) from exc
    running = df[df["state"] == "running"]
    per_type = running.groupby("instance_type")["usd_per_hour"].sum().sort_values(ascending=False)
    per_project = (df.assign(project=df["project"].fillna("(no project)"))
                   .groupby("project")["accrued_usd"].sum().sort_values(ascending=False))
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.bar([str(i) for i in per_type.index], per_type.to_numpy(), color="#d9822b")
    ax1.set_title("Running cost per instance type")
    ax1.set_ylabel("USD per hour")
    ax2.bar([str(i) for i in per_project.index], per_project.to_numpy(), color="#2b6cd9")
    ax2.set_title("Accrued cost per project")
    ax2.set_ylabel("USD")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelrotation=30)
    return fig
