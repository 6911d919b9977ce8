"""DATA/clips.csv: where each clip of a data set cut from recordings came from.

``upcall clips`` writes it beside ``train.csv``; ``lists`` reads it to split by site, recording
or time block, so clips cut from the same minutes never sit on both sides of a split. One row per
clip, with a header row, columns in this order:

    clip_name        the file in DATA/train (as in train.csv)
    label            1 (up-call) or 0, as in train.csv
    kind             positive | negative | hard-negative (a window near a selection of a label
                     that is not a positive one)
    recording        the recording's path as it was given
    rel              its path under the inputs' common folder (``/`` separated)
    channel          the channel read (0-based, as ``--channel``)
    start_s          the clip's start in the file, seconds (6 decimals)
    start_time       the clip's absolute start, ISO 8601 with its offset, or "" (unknown)
    site             the top folder of rel, the --start-times site, or ""
    table,row        the selection table and its row the clip came from ("" for a negative)
    selection_label  that selection's label ("" for a negative)

Every problem is one line naming the file and line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from upcall.audio.starttime import iso
from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_csv, read_csv_rows

CLIPS_CSV = "clips.csv"
HEADER = (
    "clip_name",
    "label",
    "kind",
    "recording",
    "rel",
    "channel",
    "start_s",
    "start_time",
    "site",
    "table",
    "row",
    "selection_label",
)
POSITIVE, NEGATIVE, HARD_NEGATIVE = "positive", "negative", "hard-negative"
KINDS = (POSITIVE, NEGATIVE, HARD_NEGATIVE)


@dataclass(frozen=True)
class ClipOrigin:
    """One row of clips.csv."""

    clip_name: str
    label: int  # 1: up-call, 0: not
    kind: str  # one of KINDS
    recording: str  # the path as given on the command line's inputs
    rel: str  # posix path under the inputs' common folder
    channel: int  # 0-based
    start_s: float  # clip start in the file
    start_time: datetime | None = None  # absolute clip start (tz-aware); None: unknown
    site: str = ""
    table: str = ""  # the selection table ("" for a plain negative)
    row: int | None = None  # its line in that table
    selection_label: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.label not in (0, 1):
            raise ValueError(f"label must be 0 or 1, got {self.label!r}")
        if self.start_time is not None and self.start_time.tzinfo is None:
            raise ValueError(f"start_time must carry a time zone, got {self.start_time}")


def _time(dt: datetime | None) -> str:
    return "" if dt is None else iso(dt)


def _cells(c: ClipOrigin) -> list[str]:
    return [
        c.clip_name,
        str(c.label),
        c.kind,
        c.recording,
        c.rel,
        str(c.channel),
        f"{c.start_s:.6f}",
        _time(c.start_time),
        c.site,
        c.table,
        "" if c.row is None else str(c.row),
        c.selection_label,
    ]


def write_clips_csv(path: str | os.PathLike, rows: Iterable[ClipOrigin]) -> None:
    """Write ``rows`` (header first) to ``path`` atomically."""
    atomic_write_csv(path, [HEADER, *(_cells(c) for c in rows)])


def read_clips_csv(path: str | os.PathLike) -> list[ClipOrigin]:
    """Every row of ``path``; a missing column, bad value or repeated clip is an UpcallError
    naming the file and line."""
    path = Path(path)
    rows = read_csv_rows(path)
    if not rows or tuple(c.strip() for c in rows[0]) != HEADER:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise UpcallError(f"{path}:1: expected the header {','.join(HEADER)!r}, found {found!r}")
    out: list[ClipOrigin] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        clip = _row(path, line, row)
        if clip.clip_name in seen:
            raise UpcallError(
                f"{path}:{line}: clip {clip.clip_name} is listed twice "
                f"(first on line {seen[clip.clip_name]})"
            )
        seen[clip.clip_name] = line
        out.append(clip)
    return out


def _row(path: Path, line: int, row: list[str]) -> ClipOrigin:
    where = f"{path}:{line}"
    if len(row) != len(HEADER):
        raise UpcallError(f"{where}: expected {len(HEADER)} fields, got {len(row)}")
    cell = dict(zip(HEADER, row, strict=True))
    if not cell["clip_name"]:
        raise UpcallError(f"{where}: empty clip_name")
    start_s = _number(where, "start_s", cell["start_s"], float)
    if not math.isfinite(start_s):
        raise UpcallError(f"{where}: start_s is not finite: {cell['start_s']!r}")
    start_time = None
    if cell["start_time"]:
        try:
            start_time = datetime.fromisoformat(cell["start_time"])
        except ValueError:
            raise UpcallError(
                f"{where}: start_time {cell['start_time']!r} is not an ISO 8601 time"
            ) from None
        if start_time.tzinfo is None:
            raise UpcallError(f"{where}: start_time {cell['start_time']!r} has no UTC offset")
    try:
        return ClipOrigin(
            clip_name=cell["clip_name"],
            label=_number(where, "label", cell["label"], int),
            kind=cell["kind"],
            recording=cell["recording"],
            rel=cell["rel"],
            channel=_number(where, "channel", cell["channel"], int),
            start_s=start_s,
            start_time=start_time,
            site=cell["site"],
            table=cell["table"],
            row=_number(where, "row", cell["row"], int) if cell["row"] else None,
            selection_label=cell["selection_label"],
        )
    except ValueError as e:
        raise UpcallError(f"{where}: {e}") from None


def _number(where: str, column: str, text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise UpcallError(f"{where}: {column} is not {what}: {text!r}") from None
