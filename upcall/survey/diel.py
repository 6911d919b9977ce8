"""The diel plot of ``upcall presence``: date × hour of day (UTC), colour = detections in the hour;
hours without recording effort in grey, so an hour without audio is not read as an hour without
calls (white: recorded, no detections)."""

from __future__ import annotations

import os

import numpy as np

from upcall.plotting import pyplot, save_png

NO_EFFORT = "#b0b0b0"
RECORDED = "#ffffff"


def grids(hourly: list) -> tuple[np.ndarray, np.ndarray]:
    """(detections, recorded) as (24, days) arrays: hour of day down, day across; recorded is
    True where the hour holds any audio (or, with the effort unknown, where it has detections).
    ``hourly``: :class:`upcall.survey.presence.Bin` of whole UTC days (the type is not imported:
    presence imports this module)."""
    days = len(hourly) // 24
    counts = np.array([b.detections for b in hourly], float).reshape(days, 24).T
    recorded = (
        np.array([bool(b.effort_s) if b.effort_s is not None else b.detections > 0 for b in hourly])
        .reshape(days, 24)
        .T
    )
    return counts, recorded


def plot_diel(hourly: list, path: str | os.PathLike, *, effort_known: bool) -> None:
    """Save the plot of ``hourly`` (whole UTC days, as :func:`upcall.survey.presence.hours`
    gives them) to ``path`` as PNG."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    counts, recorded = grids(hourly)
    days = counts.shape[1]
    fig, ax = plt.subplots(figsize=(min(4 + 0.25 * days, 16), 4.5))
    x, y = np.arange(days + 1), np.arange(25)
    ax.pcolormesh(x, y, recorded.astype(float), cmap=ListedColormap([NO_EFFORT, RECORDED]),
                  vmin=0, vmax=1)  # fmt: skip
    shown = np.ma.masked_where(counts == 0, counts)
    mesh = ax.pcolormesh(x, y, shown, cmap="viridis", vmin=1, vmax=max(counts.max(), 2))
    fig.colorbar(mesh, ax=ax, label="detections per hour", ticks=MaxNLocator(integer=True))
    labels = [b.start.date().isoformat() for b in hourly[::24]]
    step = max(1, days // 12)
    ax.set_xticks(np.arange(0, days, step) + 0.5, labels[::step], rotation=45, ha="right")
    ax.set_yticks(range(0, 25, 3))
    ax.set(xlim=(0, days), ylim=(0, 24), xlabel="date (UTC)", ylabel="hour of day (UTC)")
    grey = "no recording effort" if effort_known else "effort unknown (no detections)"
    handles = [Patch(facecolor=NO_EFFORT, label=grey)]
    if effort_known:
        handles.append(Patch(facecolor=RECORDED, edgecolor="0.5", label="recorded, no detections"))
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize="small")
    ax.set_title("detections per hour" + ("" if effort_known else " (recording effort unknown)"))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    save_png(fig, path, dpi=100)
