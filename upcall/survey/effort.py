"""DIR/recordings.csv: the recording effort of a ``detect`` output folder, one row per recording.

Columns, in this order (a header row):

    rel                 the recording's path under the inputs' common folder (``/``-separated)
    path                the recording as ``detect`` read it
    start_time          ISO 8601 with offset of the recording's first sample, or "" (unknown)
    start_source        where start_time came from ("GUANO", "file name (YYYYMMDD_HHMMSS)",
                        "unknown", ...: ``upcall.audio.starttime.Start.source``)
    duration_s          the recording's length in seconds
    sequence_offset_s   where the recording begins in the combined file-sequence table (s)

``detect`` writes it (:func:`write_effort`); ``presence`` and ``evaluate`` read it
(:func:`read_effort`) for the hours of audio and the clock time of each file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from upcall.audio.starttime import iso
from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_csv, read_csv_rows

RECORDINGS_CSV = "recordings.csv"
COLUMNS = ("rel", "path", "start_time", "start_source", "duration_s", "sequence_offset_s")


@dataclass(frozen=True)
class RecordingEffort:
    """One recording of a detect run: where it sits in time and how long it is."""

    rel: str
    path: str
    start_time: datetime | None  # tz-aware; None: the start is unknown
    start_source: str
    duration_s: float
    sequence_offset_s: float = 0.0

    @property
    def end_time(self) -> datetime | None:
        if self.start_time is None:
            return None
        return self.start_time + timedelta(seconds=self.duration_s)


def detections_table(out_dir: str | os.PathLike, rel: str) -> Path:
    """The per-file table ``detect`` writes for the recording at ``rel``: DIR/<rel>.detections.txt."""
    return Path(out_dir) / f"{rel}.detections.txt"


def _csv_path(out_dir: str | os.PathLike) -> Path:
    p = Path(out_dir)
    return p if p.suffix == ".csv" else p / RECORDINGS_CSV


def write_effort(out_dir: str | os.PathLike, rows: list[RecordingEffort]) -> Path:
    """Write ``out_dir``/recordings.csv (or the .csv path given) atomically; returns its path."""
    cells = [COLUMNS]
    for r in rows:
        if r.start_time is not None and r.start_time.utcoffset() is None:
            raise ValueError(f"{r.rel}: start_time {r.start_time} has no time zone")
        cells.append(
            [
                r.rel,
                r.path,
                iso(r.start_time) if r.start_time is not None else "",
                r.start_source,
                f"{r.duration_s:.6f}",
                f"{r.sequence_offset_s:.6f}",
            ]
        )
    path = _csv_path(out_dir)
    atomic_write_csv(path, cells)
    return path


def _number(value: str, where: str, column: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x < 0:
        raise UpcallError(f"{where}: {column} must be a number of seconds ≥ 0, got {value!r}")
    return x


def _time(value: str, where: str) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise UpcallError(f"{where}: start_time {value!r} is not ISO 8601") from None
    if t.utcoffset() is None:
        raise UpcallError(f"{where}: start_time {value!r} has no offset (e.g. +00:00)")
    return t


def read_effort(directory: str | os.PathLike) -> list[RecordingEffort] | None:
    """The rows of ``directory``/recordings.csv (or the .csv path given); None when absent.
    A bad header or row is a one-line UpcallError naming the file and line."""
    path = _csv_path(directory)
    found = read_csv_rows(path, missing_ok=True)
    if found is None:
        return None
    header = found[0] if found else None
    if header is None or tuple(header[: len(COLUMNS)]) != COLUMNS:
        raise UpcallError(f"{path}:1: the header must start {','.join(COLUMNS)}, got {header}")
    rows = []
    for line, cells in enumerate(found[1:], start=2):
        if not cells:
            continue
        where = f"{path}:{line}"
        if len(cells) < len(COLUMNS):
            raise UpcallError(f"{where}: {len(cells)} cells, expected {len(COLUMNS)}")
        rel, rpath, start, source, duration, offset = cells[: len(COLUMNS)]
        rows.append(
            RecordingEffort(
                rel=rel,
                path=rpath,
                start_time=_time(start, where),
                start_source=source,
                duration_s=_number(duration, where, "duration_s"),
                sequence_offset_s=_number(offset or "0", where, "sequence_offset_s"),
            )
        )
    return rows
