"""``--tensorboard DIR``: the job's metrics.jsonl records as TensorBoard scalars as well.

:class:`upcall.job.writer.JobWriter` hands this tracker every record it writes to
metrics.jsonl (and, when it opens, the records a resumed run keeps), so TensorBoard shows exactly
what metrics.jsonl holds, for every engine. Each job writes its own folder, ``DIR/<job name>/``
(point TensorBoard at DIR to compare the jobs of a sweep or a search). Tags, with the iteration
as the step:

    train/loss, train/lr                                    (TrainRecord)
    val/loss, val/accuracy, val/auc, val/recall/<class>     (TestRecord; a missing value is
                                                             left out, not written as NaN)

The event files are written with tensorboard's own writer (the optional extra
``upcall[tensorboard]``), imported only when a tracker is made: no torch, no TensorFlow.
"""

from __future__ import annotations

import time
from pathlib import Path

from upcall.errors import UpcallError
from upcall.job.records import Record, TestRecord, TrainRecord

EVENTS_GLOB = "events.out.tfevents.*"  # the names tensorboard's writer gives its files


def require_tensorboard() -> None:
    """Raise a one-line UpcallError when the tensorboard package is not installed."""
    try:
        import tensorboard  # noqa: F401
    except ImportError as e:
        raise UpcallError(
            "--tensorboard needs the tensorboard package: pip install 'upcall[tensorboard]'"
        ) from e


def record_scalars(record: Record) -> dict[str, float]:
    """The TensorBoard tags and values of one metrics.jsonl record (missing values left out)."""
    if isinstance(record, TrainRecord):
        values = {"train/loss": record.loss, "train/lr": record.lr}
    elif isinstance(record, TestRecord):
        values = {
            "val/loss": record.val_loss,
            "val/accuracy": record.val_accuracy,
            "val/auc": record.val_auc,
        }
        for name, recall in (record.recall or {}).items():
            values[f"val/recall/{name}"] = recall
    else:
        raise TypeError(f"not a metrics record: {record!r}")
    return {tag: float(v) for tag, v in values.items() if v is not None}


class TensorBoardTracker:
    """Scalars for TensorBoard in one folder (``DIR/<job name>/`` for a job).

    Opening it deletes the folder's earlier event files and marks a fresh session: the records
    it is then given are the job's whole history (a resumed run replays the records it keeps),
    so older files would only repeat them or, after ``--restart``, contradict them; the session
    mark makes a TensorBoard already showing the old files drop them too.

    ``scalars`` is public for other trainers (``upcall search`` can log one value per trial).
    """

    def __init__(self, folder: Path) -> None:
        require_tensorboard()
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.folder = Path(folder)
        self._event_pb2 = event_pb2
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for old in self.folder.glob(EVENTS_GLOB):
                old.unlink()
            self._writer = EventFileWriter(str(self.folder))
        except OSError as e:
            raise UpcallError(f"{self.folder}: cannot write TensorBoard events: {e}") from e
        start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        self._add(event_pb2.Event(wall_time=time.time(), step=0, session_log=start))

    def log(self, record: Record) -> None:
        """Write one metrics.jsonl record as scalars at its iteration."""
        self.scalars(record.iter, record_scalars(record))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Write ``values`` (tag -> number) at ``step``, flushed so a live TensorBoard sees it."""
        from tensorboard.compat.proto import summary_pb2

        if not values:
            return
        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in values.items()]
        )
        self._add(self._event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def _add(self, event) -> None:
        try:
            self._writer.add_event(event)
            self._writer.flush()
        except OSError as e:
            raise UpcallError(f"{self.folder}: cannot write TensorBoard events: {e}") from e

    def close(self) -> None:
        try:
            self._writer.close()
        except OSError as e:
            raise UpcallError(f"{self.folder}: cannot write TensorBoard events: {e}") from e


def job_tracker(tensorboard: Path | None, job: Path) -> TensorBoardTracker | None:
    """The tracker of ``job`` under ``--tensorboard DIR`` (``DIR/<job name>/``); None without."""
    return None if tensorboard is None else TensorBoardTracker(Path(tensorboard) / Path(job).name)
