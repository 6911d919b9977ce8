"""DIGITS-style training curves (curves.png) and the loss-axis scaling the comparison plot shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from upcall.job.records import (
    Record,
    TestRecord,
    TrainRecord,
    train_records,
    validation_records,
)
from upcall.plotting import pyplot, save_png


def gap(value: float | None) -> float:
    """A plotted value; None (not measured) becomes NaN, a gap in the line."""
    return float("nan") if value is None else value


def scale_loss_axis(ax, train: list[TrainRecord], tests: list[TestRecord]) -> None:
    """Scale a loss axis to the training run, not to tests before the first update.

    An untrained net's loss can be huge (BatchNorm with no statistics yet: 20–68 where training
    sits below 1), which would flatten every other point. Such points are cut from their lines
    (a line down from off the top would cross the plot near-vertically) and marked by a ▲ at
    the top edge; the note giving their value is added to the title. Call it after the lines
    and the title are drawn.
    """
    later = [r.loss for r in train if r.loss is not None]
    later += [r.val_loss for r in tests if r.iter > 0 and r.val_loss is not None]
    first = [r.val_loss for r in tests if r.iter == 0 and r.val_loss is not None]
    top = 1.1 * max(later) if later else None
    if not (top and first and max(first) > top):
        ax.set_ylim(bottom=0)
        return
    ax.set_ylim(0, top)
    for line in list(ax.get_lines()):
        x = np.asarray(line.get_xdata(), float)
        y = np.asarray(line.get_ydata(), float)
        high = y > top
        if high.any():
            line.set_ydata(np.where(high, np.nan, y))
            ax.plot(x[high], np.full(int(high.sum()), top), linestyle="none", marker="^",
                    color=line.get_color(), clip_on=False, zorder=4)  # fmt: skip
    # the note goes in the title, outside the plot: inside, a line or a twin axis (curves.png's
    # accuracy, near the top) would cross it or be hidden by it
    note = f"val loss up to {max(first):.3g} at epoch 0: off scale (▲)"
    ax.set_title(f"{ax.get_title()}\n{note}" if ax.get_title() else note)


def plot_curves(records: list[Record], out: Path, *, title: str = "") -> None:
    """DIGITS-style curves: losses on the left axis, accuracy on the right, lr in a second panel."""
    plt = pyplot()

    train = [r for r in train_records(records) if r.loss is not None]
    tests = validation_records(records)
    scored = [r for r in tests if r.val_accuracy is not None]
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot(
        [r.epoch for r in train], [r.loss for r in train], color="tab:blue", label="loss (train)"
    )
    ax.plot(
        [r.epoch for r in tests],
        [r.val_loss for r in tests],
        color="tab:green",
        marker=".",
        label="loss (val)",
    )
    ax.set_ylabel("loss")
    ax.set_title(title)
    scale_loss_axis(ax, train, tests)
    acc = ax.twinx()
    acc.plot(
        [r.epoch for r in scored],
        [100 * r.val_accuracy for r in scored],
        color="tab:orange",
        marker=".",
        label="accuracy (val)",
    )
    acc.set_ylabel("accuracy (%)")
    acc.set_ylim(0, 100)
    handles = ax.get_legend_handles_labels()[0] + acc.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="center right")
    ax_lr.plot(
        [r.epoch for r in train],
        [r.lr for r in train],
        color="tab:purple",
        drawstyle="steps-post",
    )  # lr is piecewise constant between display points
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("epoch")
    fig.tight_layout()
    save_png(fig, out, dpi=80)
