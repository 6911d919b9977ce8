"""The one writer of a job's results: metrics.jsonl, curves.png, train.log, wall_time.json and
summary.json (and, with ``--tensorboard``, the same records as TensorBoard scalars).

ARCHITECTURE.md §6 is the contract and :mod:`upcall.job.records` its dataclasses. The shared run
loop (``upcall.engines.loop``, for every engine) and the classical baseline
(``upcall.classical.baseline``) report through :class:`JobWriter`, and :meth:`JobWriter.finish`
is the only code that writes summary.json; reports and classification read back through
:func:`~upcall.job.records.read_metrics` / ``read_summary`` and never ask which engine made a
job. The metric maths lives in :mod:`upcall.metrics`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text
from upcall.job.curves import plot_curves
from upcall.job.records import (
    METRICS,
    SUMMARY,
    Best,
    Record,
    Summary,
    TestRecord,
    TrainRecord,
    WallTimes,
    finite,
    read_metrics,
    validation_records,
)
from upcall.job.snapshots import Prefixed, complete_names
from upcall.metrics import evaluate

__all__ = ["CURVES", "LOG", "JobWriter"]

CURVES = "curves.png"
LOG = "train.log"


def _line(record: Record) -> str:
    return json.dumps(record.to_json()) + "\n"


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failed write (a full disk, a read-only folder) into one line naming ``path``."""
    try:
        yield
    except OSError as e:
        raise UpcallError(f"{path}: cannot write: {e.strerror or e}") from e


class Tracker(Protocol):
    """Another place the records go (TensorBoard: :mod:`upcall.job.tensorboard`)."""

    def log(self, record: Record) -> None: ...

    def close(self) -> None: ...


class JobWriter:
    """Writes one job directory as training goes; the run loop reports every event through it.

    ``start_iter`` > 0 means a resumed run: records from that iteration on (written by the run
    that went on after its last snapshot, and redone now) are dropped so the file stays one
    history, and :attr:`earlier_seconds` is the training time of the runs before. ``trackers``
    get every record metrics.jsonl gets, the kept ones first; ``tensorboard``: also a
    TensorBoard tracker under ``DIR/<job name>/``. ``snapshots``: the job's snapshot sets
    (:class:`upcall.job.spec.JobSpec`), named in summary.json; None: a job without snapshots.
    """

    def __init__(
        self,
        job: Path,
        *,
        class_names: list[str],
        start_iter: int = 0,
        trackers: Sequence[Tracker] = (),
        tensorboard: Path | None = None,
        snapshots: Prefixed | None = None,
    ) -> None:
        self.job = Path(job)
        self.class_names = list(class_names)
        self.snapshots = snapshots
        self.records: list[Record] = (
            [r for r in read_metrics(self.job, missing_ok=True) if r.iter < start_iter]
            if start_iter
            else []
        )
        self.earlier_seconds = self._wall_times().upto(start_iter) if start_iter else 0.0
        self.trackers = list(trackers)
        if tensorboard is not None:
            from upcall.job.tensorboard import job_tracker

            self.trackers.append(job_tracker(tensorboard, self.job))
        for record in self.records:
            for tracker in self.trackers:
                tracker.log(record)
        with writing(self.job / METRICS):
            atomic_write_text(self.job / METRICS, "".join(_line(r) for r in self.records))
            self._metrics = open(self.job / METRICS, "a", encoding="utf-8")
        try:
            with writing(self.job / LOG):
                self._log = open(self.job / LOG, "a" if start_iter else "w", encoding="utf-8")
        except BaseException:
            self._metrics.close()
            raise

    def log(self, message: str) -> None:
        """Append one timestamped line to train.log."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with writing(self.job / LOG):
            self._log.write(f"{stamp} {message}\n")
            self._log.flush()

    def _append(self, record: Record) -> None:
        self.records.append(record)
        with writing(self.job / METRICS):
            self._metrics.write(_line(record))
            self._metrics.flush()
        for tracker in self.trackers:
            tracker.log(record)

    def tested(self) -> set[int]:
        """The iterations that have a test record."""
        return {r.iter for r in validation_records(self.records)}

    def train(self, *, iter: int, epoch: float, lr: float, loss: float) -> TrainRecord:
        """Record a display point: the (smoothed) training loss and the learning rate."""
        record = TrainRecord(iter=iter, epoch=round(epoch, 6), lr=lr, loss=finite(loss))
        self._append(record)
        self.log(f"Iteration {iter} (epoch {epoch:.3f}), lr = {lr:.6g}, loss = {loss:.6g}")
        return record

    def test(
        self,
        *,
        iter: int,
        epoch: float,
        val_loss: float | None,
        scores: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        val_accuracy: float | None = None,
        caffe_logged: dict[str, float] | None = None,
    ) -> TestRecord:
        """Record a validation pass and redraw the curves.

        With (N, K) ``scores`` and their ``labels`` (each validation clip once) the record has
        accuracy (Caffe's rule), AUC, recall and, unless ``val_loss`` is given, the mean
        cross-entropy; without, only ``val_loss`` and ``val_accuracy`` as given.
        ``caffe_logged``: Caffe's own test outputs, kept apart (:class:`TestRecord`).
        """
        auc, recall, clips = None, None, None
        if scores is not None:
            m = evaluate(scores, labels, class_names=self.class_names)
            val_accuracy, auc = m["val_accuracy"], finite(m["val_auc"])
            recall = {k: finite(v) for k, v in m["recall"].items()}
            val_loss = m["val_loss"] if val_loss is None else val_loss
            clips = len(labels)
        record = TestRecord(
            iter=iter,
            epoch=round(epoch, 6),
            val_loss=finite(val_loss),
            val_accuracy=val_accuracy,
            val_auc=auc,
            recall=recall,
            clips=clips,
            caffe_logged=caffe_logged,
        )
        self._append(record)
        self.log(f"Iteration {iter} (epoch {epoch:.3f}) test: " + _describe(record))
        self.draw()
        return record

    def draw(self) -> None:
        """Redraw curves.png from the records so far (atomically)."""
        with writing(self.job / CURVES):
            plot_curves(self.records, self.job / CURVES, title=self.job.name)

    def _wall_times(self) -> WallTimes:
        """wall_time.json as it is (empty when missing or unreadable: a job from an older
        upcall, whose earlier training time is then unknown)."""
        try:
            return WallTimes.read(self.job) or WallTimes()
        except UpcallError:
            return WallTimes()

    def snapshotted(self, it: int, seconds: float) -> None:
        """Note in wall_time.json that snapshot ``it`` holds ``seconds`` of training (for the
        summary of a later resumed run)."""
        with writing(self.job / WallTimes.FILE):
            self._wall_times().with_snapshot(it, seconds).write(self.job)

    def finish(self, **fields) -> Summary:
        """Write summary.json: ``fields`` plus the final and best validation results, and the
        complete snapshot sets' names (unless ``snapshots`` is given)."""
        tests = validation_records(self.records)
        if "snapshots" not in fields:
            names = complete_names(self.snapshots) if self.snapshots is not None else []
            fields["snapshots"] = tuple(names)
        summary = Summary(**fields, final=tests[-1] if tests else None, best=Best.of(tests))
        try:
            with writing(self.job / SUMMARY):
                summary.write(self.job)
            self.draw()
        finally:
            self.close()
        return summary

    def close(self) -> None:
        for file in (self._metrics, self._log):
            with contextlib.suppress(OSError):  # a full disk: the write already said so
                file.close()
        for tracker in self.trackers:
            with contextlib.suppress(UpcallError):  # as above: a failed write already said so
                tracker.close()


def _describe(r: TestRecord) -> str:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    text = f"loss = {'n/a' if r.val_loss is None else f'{r.val_loss:.6g}'}, "
    text += f"accuracy = {fmt(r.val_accuracy)}, AUC = {fmt(r.val_auc)}"
    if r.recall is not None:
        text += ", recall: " + ", ".join(f"{k} {fmt(v)}" for k, v in r.recall.items())
    if r.clips is not None:
        text += f" ({r.clips} clips)"
    if r.caffe_logged:
        text += "; Caffe logged " + ", ".join(f"{k} {v:.4g}" for k, v in r.caffe_logged.items())
    return text
