"""The files a trained job holds (ARCHITECTURE.md §6): the records of metrics.jsonl and summary.json.

One frozen dataclass per contract; engines write them through :class:`upcall.job.writer.JobWriter`
and every reader (report, demo, sweep, tests) goes through :func:`read_metrics` and
:meth:`Summary.read`, never string keys, so reports never ask which engine made a job.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from upcall.errors import UpcallError
from upcall.jsonfile import JsonFile

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


def finite(value: float | None) -> float | None:
    """``value`` as a float, or None when it is missing or not finite (JSON has no NaN)."""
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True, kw_only=True)
class TrainRecord(JsonFile):
    """A display point: the training loss smoothed over ``average_loss`` updates, and the lr."""

    kind: str = "train"
    iter: int
    epoch: float
    lr: float
    loss: float | None  # None: the loss was not finite

    def __post_init__(self) -> None:
        if self.kind != "train":
            raise ValueError(f"a train record has kind 'train', not {self.kind!r}")


@dataclass(frozen=True, kw_only=True)
class TestRecord(JsonFile):
    """A validation pass: upcall's figures, each over every validation clip exactly once.

    ``clips`` says how many clips that is. Caffe's own test pass runs ``test_iter`` batches and
    wraps around the validation LMDB to fill the last one (150 clips, batch 100: 200 scores, the
    first 50 clips twice), so what Caffe (or DIGITS) logged is kept apart, in ``caffe_logged``,
    never in the fields above. A test whose weights could not be scored (DIGITS's iteration 0)
    has only ``caffe_logged``.
    """

    __test__: ClassVar[bool] = False  # not a pytest class, despite its name

    kind: str = "test"
    iter: int
    epoch: float
    val_loss: float | None  # mean cross-entropy per clip
    val_accuracy: float | None  # Caffe's rule: a tie counts against the label
    val_auc: float | None = None  # None: undefined (one class) or not scored
    recall: dict[str, float | None] | None = None  # class name -> recall
    # validation clips the figures above cover, each once; None: not scored, or an older record
    # (written before upcall counted each clip once: its figures may count some clips twice)
    clips: int | None = None
    # Caffe's "Test net output" figures as its log printed them (DIGITS shows these), over
    # test_iter × batch_size samples; None: no Caffe log (the torch engine)
    caffe_logged: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.kind != "test":
            raise ValueError(f"a test record has kind 'test', not {self.kind!r}")


Record = TrainRecord | TestRecord
RECORDS: dict[str, type[TrainRecord] | type[TestRecord]] = {
    "train": TrainRecord,
    "test": TestRecord,
}


@dataclass(frozen=True)
class Best(JsonFile):
    """The best value of each validation metric over a run (each may come from its own test)."""

    val_accuracy: float | None
    val_auc: float | None
    val_loss: float | None

    @classmethod
    def of(cls, tests: list[TestRecord]) -> Best | None:
        """The best of the tests of trained weights: the iteration-0 test (the untrained net)
        does not count."""
        tests = [r for r in tests if r.iter > 0]
        if not tests:
            return None

        def pick(key: str, sign: float) -> float | None:
            values = [getattr(r, key) for r in tests if getattr(r, key) is not None]
            return max(values, key=lambda v: sign * v) if values else None

        return cls(pick("val_accuracy", 1), pick("val_auc", 1), pick("val_loss", -1))


@dataclass(frozen=True)
class Summary(JsonFile):
    """summary.json: written once, when training finished, by :meth:`upcall.job.writer.JobWriter.
    finish` alone (for the shared run loop and the classical baseline)."""

    FILE: ClassVar[str] = SUMMARY

    engine: str
    network: str
    iterations: int
    epochs: float
    wall_seconds: float
    # steady state: forward/backward/update only, no tests or snapshots, no warm-up
    train_images_per_second: float | None
    device: str  # "cpu", "cuda:0", or where a remote engine trained
    threads: int | None  # CPU threads the run used; None when unknown (a remote engine)
    resumed_from: int | None
    snapshots: tuple[str, ...]
    final: TestRecord | None  # the last test record
    best: Best | None


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """A warning on stderr, once per process (a report reads a job's records more than once)."""
    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr)


def read_metrics(job: Path, *, missing_ok: bool = False) -> list[Record]:
    """The records of a job's metrics.jsonl, in order."""
    path = Path(job) / METRICS
    if not path.exists():
        if missing_ok:
            return []
        raise UpcallError(f"{path}: no such file (has the job been trained?)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UpcallError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from e
    records: list[Record] = []
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines) and not text.endswith("\n"):  # cut short by a crash: drop it
                _warn_once(f"{path}:{n}: warning: dropped a torn last line (an interrupted write)")
                break
            raise UpcallError(f"{path}:{n}: not a JSON line: {e.msg}") from e
        kind = value.get("kind") if isinstance(value, dict) else None
        if kind not in RECORDS:
            raise UpcallError(f"{path}:{n}: unknown record kind {kind!r} (train or test)")
        records.append(RECORDS[kind].from_json(value, source=f"{path}:{n}"))
    return records


def read_summary(job: Path) -> Summary:
    """A job's summary.json (written when training finished)."""
    return Summary.require(job, "training has not finished")


def validation_records(records: list[Record]) -> list[TestRecord]:
    return [r for r in records if isinstance(r, TestRecord)]


def train_records(records: list[Record]) -> list[TrainRecord]:
    return [r for r in records if isinstance(r, TrainRecord)]


@dataclass(frozen=True)
class WallTimes(JsonFile):
    """wall_time.json: seconds of training up to each snapshot, summed over the runs that made
    it, so a resumed run's summary counts the whole training time."""

    FILE: ClassVar[str] = "wall_time.json"

    seconds: dict[str, float] = field(default_factory=dict)  # snapshot iteration -> seconds

    def upto(self, it: int) -> float:
        return float(self.seconds.get(str(it), 0.0))

    def with_snapshot(self, it: int, seconds: float) -> WallTimes:
        return WallTimes({**self.seconds, str(it): round(seconds, 3)})
