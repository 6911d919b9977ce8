"""The HTML report's figures, each returned as PNG bytes (the page embeds them).

Everything here reads :class:`upcall.reports.entries.Entry` objects, so a figure never asks
which engine made a job.
"""

from __future__ import annotations

import numpy as np

from upcall.job.curves import gap, scale_loss_axis
from upcall.job.records import train_records
from upcall.metrics import auc
from upcall.plotting import png_bytes, pyplot
from upcall.reports.entries import Entry
from upcall.reports.scores import ValScores

DPI = 80


def class_histogram(counts: dict[str, dict[str, int]], title: str) -> bytes:
    """Images per class in each list (train, val) of one dataset."""
    plt = pyplot()
    lists = [k for k, v in counts.items() if isinstance(v, dict)]
    classes = sorted({c for k in lists for c in counts[k]})
    fig, ax = plt.subplots(figsize=(5, 3.2))
    width = 0.8 / max(len(lists), 1)
    for i, name in enumerate(lists):
        values = [counts[name].get(c, 0) for c in classes]
        bars = ax.bar(np.arange(len(classes)) + i * width, values, width, label=name)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(np.arange(len(classes)) + width * (len(lists) - 1) / 2, classes)
    ax.set(ylabel="images", title=title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return png_bytes(fig, dpi=DPI)


def samples(val: ValScores, *, per_class: int = 6, seed: int = 0) -> bytes:
    """``per_class`` validation spectrograms of each class, drawn with ``seed``."""
    plt = pyplot()
    rng = np.random.default_rng(seed)
    k = len(val.class_names)
    fig, axes = plt.subplots(k, per_class, figsize=(1.3 * per_class, 2.6 * k), squeeze=False)
    for c, name in enumerate(val.class_names):
        mine = np.flatnonzero(val.labels == c)
        picks = rng.choice(mine, size=min(per_class, len(mine)), replace=False)
        for j, ax in enumerate(axes[c]):
            ax.axis("off")
            if j < len(picks):
                _spectrogram(ax, val.images[picks[j]])
        axes[c][0].set_title(name, loc="left", fontsize=9)
    fig.tight_layout()
    return png_bytes(fig, dpi=DPI)


def _spectrogram(ax, image: np.ndarray) -> None:
    # row 0 is the lowest frequency (ARCHITECTURE.md §2): origin="lower" puts it at the bottom
    ax.imshow(image, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")


def network_curves(network: str, entries: list[Entry]) -> bytes:
    """Every job of one network overlaid: training and validation loss, accuracy and AUC."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    (ax_train, ax_val), (ax_acc, ax_auc) = axes
    all_train, all_tests = [], []
    for e in sorted(entries, key=lambda e: e.label):
        train = [r for r in train_records(list(e.records)) if r.loss is not None]
        tests = e.tests
        all_train += train
        all_tests += tests
        label = e.label + ("" if e.row else f" ({e.status})")
        line = ax_train.plot([r.epoch for r in train], [r.loss for r in train], label=label)[0]
        style = {"color": line.get_color(), "marker": "."}
        x = [r.epoch for r in tests]
        ax_val.plot(x, [gap(r.val_loss) for r in tests], **style)
        ax_acc.plot(x, [100 * gap(r.val_accuracy) for r in tests], **style)
        ax_auc.plot(x, [gap(r.val_auc) for r in tests], **style)
    ax_train.set(ylabel="training loss", title=f"{network}: training loss")
    ax_val.set(ylabel="validation loss", title="validation loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="validation accuracy", ylim=(0, 100))
    ax_auc.set(xlabel="epoch", ylabel="AUC", title="validation AUC", ylim=(0, 1))
    scale_loss_axis(ax_train, all_train, [])
    scale_loss_axis(ax_val, [], all_tests)
    ax_train.legend(fontsize="small")
    fig.tight_layout()
    return png_bytes(fig, dpi=DPI)


def against_lr(nets: dict[str, list[Entry]], baseline: list[Entry]) -> bytes:
    """Final AUC and accuracy against learning rate, one line per network; the majority-class
    accuracy and the classical baseline as horizontal lines."""
    plt = pyplot()
    fig, (ax_auc, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    majority = [e.majority for es in nets.values() for e in es if e.majority is not None]
    for net, es in sorted(nets.items()):
        es = sorted((e for e in es if e.row.base_lr), key=lambda e: e.row.base_lr)
        lrs = [e.row.base_lr for e in es]
        ax_auc.plot(lrs, [gap(e.auc) for e in es], marker="o", label=net)
        ax_acc.plot(lrs, [100 * gap(e.row.final_accuracy) for e in es], marker="o", label=net)
    for e in baseline:
        for ax, v in (
            (ax_auc, e.auc),
            (ax_acc, e.row.final_accuracy and 100 * e.row.final_accuracy),
        ):
            if v is not None:
                ax.axhline(v, color="grey", linestyle="--", label=f"baseline ({e.label})")
    if majority:
        ax_acc.axhline(100 * max(majority), color="black", linestyle=":", label="majority class")
    for ax in (ax_auc, ax_acc):
        ax.set_xscale("log")
        ax.legend(fontsize="small")
    ax_auc.set(xlabel="base learning rate", ylabel="final validation AUC", title="AUC")
    ax_acc.set(xlabel="base learning rate", ylabel="final accuracy (%)", title="accuracy")
    for ax, top in ((ax_auc, 1.0), (ax_acc, 100.0)):  # autoscale's margin would run past them
        low, high = ax.get_ylim()
        ax.set_ylim(low, min(high, top))
    fig.tight_layout()
    return png_bytes(fig, dpi=DPI)


def roc_points(val: ValScores) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, recall, precision, thresholds) at each distinct score, descending."""
    positive = val.labels == val.positive
    order = np.argsort(-val.scores, kind="mergesort")
    scores, hit = val.scores[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # a run of ties is one step
    tp, fp = np.cumsum(hit)[last], np.cumsum(~hit)[last]
    n_pos, n_neg = max(int(positive.sum()), 1), max(int((~positive).sum()), 1)
    return fp / n_neg, tp / n_pos, tp / (tp + fp), scores[last]


def roc_pr(models: list[Entry], threshold: float) -> bytes:
    """ROC (left) and precision–recall (right) of ``models``, each marked at ``threshold``."""
    plt = pyplot()
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(10, 4.5))
    for e in models:
        fpr, tpr, precision, cut = roc_points(e.val)
        # metrics.auc over each clip once, as the table's (the final record's) AUC
        area = auc(e.val.scores, e.val.labels == e.val.positive)
        line = ax_roc.plot(np.r_[0, fpr], np.r_[0, tpr], label=f"{e.label} (AUC {area:.3f})")
        ax_pr.plot(tpr, precision, color=line[0].get_color(), label=e.label)
        i = np.flatnonzero(cut >= threshold)
        if len(i):  # the operating point the table reports
            ax_roc.plot(fpr[i[-1]], tpr[i[-1]], "o", color=line[0].get_color())
            ax_pr.plot(tpr[i[-1]], precision[i[-1]], "o", color=line[0].get_color())
    ax_roc.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax_roc.set(xlabel="false-positive rate", ylabel="whale recall", title="ROC", xlim=(0, 1))
    ax_pr.set(xlabel="whale recall", ylabel="whale precision", title="precision–recall")
    ax_pr.set(xlim=(0, 1), ylim=(0, 1.02))
    ax_roc.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    return png_bytes(fig, dpi=DPI)


def confusion(models: list[Entry]) -> bytes:
    """The confusion matrix of each model at the report's threshold (rows: true class)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.2), squeeze=False)
    for ax, e in zip(axes[0], models, strict=True):
        m, names = e.at.confusion, e.val.class_names
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v > m.max() / 2 else "black")  # fmt: skip
        ax.set_xticks([0, 1], [names[0], names[-1]])
        ax.set_yticks([0, 1], [names[0], names[-1]])
        ax.set(xlabel="called", ylabel="true", title=f"{e.label}\n≥ {e.at.threshold:g}")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return png_bytes(fig, dpi=DPI)


def most_wrong(e: Entry, *, n: int = 12) -> tuple[bytes | None, list[tuple[str, int, float]]]:
    """The validation clips ``e`` calls wrongly at its threshold, the ``n`` farthest from their
    label (largest |label − score|) first, as spectrograms with their scores; also (name,
    label, score) of each. (None, []) when it calls every clip right."""
    plt = pyplot()
    val = e.val
    positive = val.labels == val.positive
    error = np.abs(positive - val.scores)
    wrong = np.flatnonzero((val.scores >= e.at.threshold) != positive)
    worst = wrong[np.argsort(-error[wrong], kind="mergesort")][:n]
    if not len(worst):
        return None, []
    cols = min(6, len(worst))
    rows = -(-len(worst) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    listed = []
    for ax, i in zip(axes.flat, worst, strict=False):
        name = val.names[i].rsplit("/", 1)[-1]
        _spectrogram(ax, val.images[i])
        ax.set_title(f"{name}\n{val.class_names[val.labels[i]]}\nP(whale) {val.scores[i]:.2f}",
                     fontsize=7)  # fmt: skip
        listed.append((val.names[i], int(val.labels[i]), float(val.scores[i])))
    fig.tight_layout()
    return png_bytes(fig, dpi=DPI), listed
