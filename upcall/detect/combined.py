"""Every recording's detections in one place, made from the per-recording tables of a run.

    DIR/detections.txt   a Raven file sequence: the recordings one after another (in time
                         order; those of unknown start after them, in name order), Begin Time (s)
                         from the start of the sequence (the lengths of the files before it plus
                         File Offset (s)), with Begin File, Begin Path and File Offset (s) per row
    DIR/sequence.txt     the sequence's files, one absolute path a line (Raven's list file)
    DIR/detections.csv   one row per detection, times in its own file, begin_time its absolute
                         time (ISO 8601 with offset) where the recording's start is known
    DIR/recordings.csv   each recording's start, length and offset in the sequence
                         (:mod:`upcall.survey.effort`): the gaps of a duty-cycled deployment

A file sequence has no gaps: Raven plays the files back to back, so a gap between two recordings
shows only in their clock times and in recordings.csv; :func:`write_combined` says how many.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from upcall.audio.raven import Selection, read_table, write_table
from upcall.audio.starttime import iso
from upcall.detect.made import Made
from upcall.fsutil import atomic_write_csv, atomic_write_text
from upcall.survey.effort import RecordingEffort, detections_table, write_effort

CSV_COLUMNS = ("recording", "rel", "begin_s", "end_s", "low_hz", "high_hz", "score", "peak_s",
               "begin_time")  # fmt: skip
SEQUENCE = "sequence.txt"
GAP_S = 1.0  # a pause between files longer than this is a gap (clocks are kept to the second)


@dataclass(frozen=True)
class Entry:
    """One finished recording of the run."""

    path: Path
    rel: Path  # under the inputs' common folder (where its table sits in DIR)
    made: Made  # its record: the absolute start and its source
    duration_s: float

    @property
    def start(self) -> datetime | None:
        return datetime.fromisoformat(self.made.start) if self.made.start else None


def table_path(out: Path, rel: Path) -> Path:
    """Where the table of the recording at ``rel`` (under the inputs' common folder) goes: the
    one place presence reads it from too."""
    return detections_table(out, rel)


def order(entries: list[Entry]) -> list[Entry]:
    """The sequence: recordings of known start in time order, then the others in name order."""
    known = sorted((e for e in entries if e.start), key=lambda e: (e.start, e.rel.as_posix()))
    unknown = sorted((e for e in entries if not e.start), key=lambda e: e.rel.as_posix())
    return known + unknown


def offsets(ordered: list[Entry]) -> list[float]:
    """Each recording's start in the sequence: the lengths of those before it."""
    out, total = [], 0.0
    for e in ordered:
        out.append(total)
        total += e.duration_s
    return out


def pauses(ordered: list[Entry]) -> list[float]:
    """Seconds from each recording's end to the next one's start, for consecutive recordings
    of known start (negative: they overlap)."""
    out = []
    for a, b in itertools.pairwise(ordered):
        if a.start and b.start:
            out.append((b.start - (a.start + timedelta(seconds=a.duration_s))).total_seconds())
    return out


def describe(ordered: list[Entry]) -> list[str]:
    """Lines for the log: the sequence's order, its gaps and overlaps."""
    if not ordered:
        return []
    unknown = sum(1 for e in ordered if not e.start)
    lines = []
    if unknown == len(ordered):
        lines.append(f"file sequence: {len(ordered)} recording(s) in name order (no start times)")
    else:
        tail = f"; {unknown} of unknown start after them, in name order" if unknown else ""
        lines.append(f"file sequence: {len(ordered) - unknown} recording(s) in time order{tail}")
    found = pauses(ordered)
    gaps = [p for p in found if p > GAP_S]
    if gaps:
        lines.append(
            f"  {len(gaps)} gap(s) between recordings (duty cycle?), {_span(min(gaps))} to "
            f"{_span(max(gaps))}, {_span(sum(gaps))} in all: no audio there, so no detections; "
            "the sequence's Begin Time (s) counts recorded audio only (recordings.csv has each "
            "file's start)"
        )
    if overlaps := [p for p in found if p < -GAP_S]:
        lines.append(f"  {len(overlaps)} recording(s) overlap the one before them in time")
    return lines


def _span(seconds: float) -> str:
    s = round(seconds)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def write_combined(out: Path, entries: list[Entry]) -> list[str]:
    """DIR/detections.txt, sequence.txt, detections.csv and recordings.csv from the finished
    tables of ``entries``; returns lines for the log (:func:`describe`)."""
    ordered = order(entries)
    rows: list[Selection] = []
    per_file: list[tuple[Entry, Selection]] = []
    for e, offset in zip(ordered, offsets(ordered), strict=True):
        table = table_path(out, e.rel)
        if not table.exists():
            continue
        where = str(e.path.resolve())
        for s in read_table(table):
            # the clock from the start, not read back from the table's millisecond cells
            s = replace(s, clock=e.start + timedelta(seconds=s.begin_s) if e.start else None)
            per_file.append((e, s))
            rows.append(
                replace(
                    s,
                    begin_s=offset + s.begin_s,
                    end_s=offset + s.end_s,
                    begin_file=e.path.name,
                    begin_path=where,
                    file_offset_s=s.begin_s,
                    peak_s=offset + s.peak_s if s.peak_s is not None else None,
                )
            )
    write_table(out / "detections.txt", rows, scores=True)
    lines = "".join(f"{e.path.resolve()}\n" for e in ordered)
    atomic_write_text(out / SEQUENCE, lines)
    atomic_write_csv(out / "detections.csv", [CSV_COLUMNS, *map(_csv_row, per_file)])
    effort = [
        RecordingEffort(
            e.rel.as_posix(),
            str(e.path.resolve()),
            e.start,
            e.made.start_source,
            e.duration_s,
            offset,
        )
        for e, offset in zip(ordered, offsets(ordered), strict=True)
    ]
    write_effort(out, effort)
    return describe(ordered)


def _csv_row(row: tuple[Entry, Selection]) -> list[str]:
    e, s = row
    return [
        str(e.path.resolve()),
        e.rel.as_posix(),
        f"{s.begin_s:.3f}",
        f"{s.end_s:.3f}",
        f"{s.low_hz:.1f}",
        f"{s.high_hz:.1f}",
        f"{s.score:.6f}" if s.score is not None else "",
        f"{s.peak_s:.3f}" if s.peak_s is not None else "",
        iso(s.clock) if s.clock is not None else "",
    ]
