"""The job directory every engine writes: metrics.jsonl, curves.png, summary.json, train.log.

ARCHITECTURE.md §6 is the contract. Engines report through :class:`JobWriter`; reports and
classification read back through :func:`read_metrics` / :func:`read_summary` and never ask which
engine made a job. The metric maths (Caffe's Accuracy, rank AUC, recall) lives here so every
engine computes them the same way.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text, read_json
from upcall.plotting import pyplot, save_png

METRICS = "metrics.jsonl"
CURVES = "curves.png"
SUMMARY = "summary.json"
LOG = "train.log"


def caffe_correct(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample top-1 correctness as Caffe's Accuracy layer counts it.

    A sample is right only if no other class scores ``>=`` the true class, so ties are wrong.
    ``scores`` is (N, K), ``labels`` is (N,) of ints in [0, K).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    true = scores[np.arange(len(labels)), labels]
    # the true class itself is counted once by >=, hence "== 1"
    return (scores >= true[:, None]).sum(axis=1) == 1


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) formula, ties given average ranks.

    Returns NaN when only one class is present, as the AUC is then undefined.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # average rank of each run of equal scores: (first + last) / 2, ranks 1-based
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def evaluate(scores: np.ndarray, labels: np.ndarray, *, class_names: list[str]) -> dict:
    """Validation accuracy (Caffe semantics), AUC and recall per class from (N, K) scores.

    AUC is for the last class against the rest when K == 2 (the "whale" probability), and the
    macro average of one-vs-rest AUCs otherwise. Recall of a class counts its samples that Caffe's
    Accuracy would call right.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or len(scores) != len(labels) or scores.shape[1] != len(class_names):
        raise ValueError(
            f"scores {scores.shape} do not match {len(labels)} labels and {len(class_names)} classes"
        )
    correct = caffe_correct(scores, labels)
    k = scores.shape[1]
    if k == 2:
        val_auc = auc(scores[:, 1], labels == 1)
    else:
        val_auc = float(np.nanmean([auc(scores[:, c], labels == c) for c in range(k)]))
    recall = {}
    for c, name in enumerate(class_names):
        mine = labels == c
        recall[name] = float(correct[mine].mean()) if mine.any() else float("nan")
    return {"val_accuracy": float(correct.mean()), "val_auc": val_auc, "recall": recall}


def _clean(value: float) -> float | None:
    # JSON has no NaN; an undefined metric is written as null
    return None if value is None or not np.isfinite(value) else float(value)


class JobWriter:
    """Writes one job directory as training goes; every engine reports through this.

    ``start_iter`` > 0 means a resumed run: records from that iteration on (written by the run
    that went on after its last snapshot, and redone now) are dropped so the file stays one
    history.
    """

    def __init__(self, job: Path, *, class_names: list[str], start_iter: int = 0) -> None:
        self.job = Path(job)
        self.class_names = list(class_names)
        self.records = (
            [r for r in read_metrics(self.job, missing_ok=True) if r["iter"] < start_iter]
            if start_iter
            else []
        )
        atomic_write_text(self.job / METRICS, "".join(json.dumps(r) + "\n" for r in self.records))
        self._metrics = open(self.job / METRICS, "a", encoding="utf-8")
        self._log = open(self.job / LOG, "a" if start_iter else "w", encoding="utf-8")

    def log(self, message: str) -> None:
        """Append one timestamped line to train.log."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.write(f"{stamp} {message}\n")
        self._log.flush()

    def _append(self, record: dict) -> None:
        self.records.append(record)
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()

    def train(self, *, iter: int, epoch: float, lr: float, loss: float) -> None:
        """Record a display point: the (smoothed) training loss and the learning rate."""
        self._append(
            {
                "kind": "train",
                "iter": iter,
                "epoch": round(epoch, 6),
                "lr": lr,
                "loss": _clean(loss),
            }
        )
        self.log(f"Iteration {iter} (epoch {epoch:.3f}), lr = {lr:.6g}, loss = {loss:.6g}")

    def test(
        self, *, iter: int, epoch: float, val_loss: float, scores: np.ndarray, labels: np.ndarray
    ) -> dict:
        """Record a validation pass from its (N, K) scores; returns the record and redraws curves."""
        m = evaluate(scores, labels, class_names=self.class_names)
        record = {
            "kind": "test",
            "iter": iter,
            "epoch": round(epoch, 6),
            "val_loss": _clean(val_loss),
            "val_accuracy": m["val_accuracy"],
            "val_auc": _clean(m["val_auc"]),
            "recall": {k: _clean(v) for k, v in m["recall"].items()},
        }
        self._append(record)
        recall = ", ".join(f"{k} {v:.4f}" for k, v in m["recall"].items())
        self.log(
            f"Iteration {iter} (epoch {epoch:.3f}) test: loss = {val_loss:.6g}, "
            f"accuracy = {m['val_accuracy']:.4f}, AUC = {m['val_auc']:.4f}, recall: {recall}"
        )
        self.draw()
        return record

    def draw(self) -> None:
        """Redraw curves.png from the records so far (atomically)."""
        plot_curves(self.records, self.job / CURVES, title=self.job.name)

    def finish(self, summary: dict) -> dict:
        """Write summary.json: the given fields plus the final and best validation results."""
        tests = [r for r in self.records if r["kind"] == "test"]
        full = dict(summary)
        full["final"] = tests[-1] if tests else None
        full["best"] = best_of(tests)
        atomic_write_text(self.job / SUMMARY, json.dumps(full, indent=2) + "\n")
        self.draw()
        self.close()
        return full

    def close(self) -> None:
        self._metrics.close()
        self._log.close()


def best_of(tests: list[dict]) -> dict | None:
    """Best value of each validation metric over the test records (each may come from its own test)."""
    if not tests:
        return None

    def pick(key: str, sign: float) -> float | None:
        values = [r[key] for r in tests if r.get(key) is not None]
        return (max(values, key=lambda v: sign * v)) if values else None

    return {
        "val_accuracy": pick("val_accuracy", 1),
        "val_auc": pick("val_auc", 1),
        "val_loss": pick("val_loss", -1),
    }


def read_metrics(job: Path, *, missing_ok: bool = False) -> list[dict]:
    """The records of a job's metrics.jsonl, in order."""
    path = Path(job) / METRICS
    if not path.exists():
        if missing_ok:
            return []
        raise UpcallError(f"{path}: no such file (has the job been trained?)")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise UpcallError(f"{path}:{n}: not a JSON line: {e.msg}") from e
    return records


def read_summary(job: Path) -> dict:
    """A job's summary.json (written when training finished)."""
    path = Path(job) / SUMMARY
    summary = read_json(path)
    if summary is None:
        raise UpcallError(f"{path}: no such file (training has not finished)")
    return summary


def scale_loss_axis(ax, train: list[dict], tests: list[dict]) -> None:
    """Scale a loss axis to the training run, not to tests before the first update.

    An untrained net's loss can be huge (BatchNorm with no statistics yet: 60+ where training
    sits below 1), which would flatten every other point; such a point stays plotted, off the
    top, and its value is written on the plot. ``train``/``tests``: metrics.jsonl records.
    """
    later = [r["loss"] for r in train] + [r["val_loss"] for r in tests if r["iter"] > 0]
    first = [r["val_loss"] for r in tests if r["iter"] == 0]
    top = 1.1 * max(later) if later else None
    if top and first and max(first) > top:
        ax.set_ylim(0, top)
        ax.annotate(
            f"val loss up to {max(first):.3g} at epoch 0 (off scale)",
            xy=(0, top),
            xytext=(4, -12),
            textcoords="offset points",
            fontsize=8,
            color="tab:green",
        )
    else:
        ax.set_ylim(bottom=0)


def plot_curves(records: list[dict], out: Path, *, title: str = "") -> None:
    """DIGITS-style curves: losses on the left axis, accuracy on the right, lr in a second panel."""
    plt = pyplot()

    train = [r for r in records if r["kind"] == "train" and r["loss"] is not None]
    tests = [r for r in records if r["kind"] == "test"]
    fig, (ax, ax_lr) = plt.subplots(
        2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot(
        [r["epoch"] for r in train],
        [r["loss"] for r in train],
        color="tab:blue",
        label="loss (train)",
    )
    ax.plot(
        [r["epoch"] for r in tests],
        [r["val_loss"] for r in tests],
        color="tab:green",
        marker=".",
        label="loss (val)",
    )
    ax.set_ylabel("loss")
    scale_loss_axis(ax, train, tests)
    acc = ax.twinx()
    acc.plot(
        [r["epoch"] for r in tests],
        [100 * r["val_accuracy"] for r in tests],
        color="tab:orange",
        marker=".",
        label="accuracy (val)",
    )
    acc.set_ylabel("accuracy (%)")
    acc.set_ylim(0, 100)
    handles = ax.get_legend_handles_labels()[0] + acc.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="center right")
    ax.set_title(title)
    ax_lr.plot(
        [r["epoch"] for r in train],
        [r["lr"] for r in train],
        color="tab:purple",
        drawstyle="steps-post",
    )  # lr is piecewise constant between display points
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("epoch")
    fig.tight_layout()
    save_png(fig, out, dpi=80)
