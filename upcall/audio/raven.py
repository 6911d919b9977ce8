"""Raven selection tables: the tab-separated text format bioacousticians annotate and review in.

One row per selection (a time-frequency box). The fixed columns are Raven's own:
``Selection, View, Channel, Begin Time (s), End Time (s), Low Freq (Hz), High Freq (Hz),
Delta Time (s)``; then, where used, the file-sequence columns (``Begin File``, ``Begin Path``,
``File Offset (s)``), the absolute time (``Begin Date``, ``Begin Clock Time``), the detector's
``Peak Score Time (s)``, the label (``Annotation``), ``Score`` and any other columns a selection
carries (``Verified``, notes, more annotation columns). Tables are read as Raven and people write
them: a BOM, Windows line ends, trailing tabs, quoted cells, one row per view, columns in any
order, the label in a column of the user's choosing. The synthetic recording writes its truth
through this module and the detector writes its results through it, so both read back the same.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from upcall.audio.starttime import to_ms
from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text

VIEW = "Spectrogram 1"  # Raven shows a selection in the view it was drawn in; one view here

BASE_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Delta Time (s)",
)
ANNOTATION = "Annotation"
SCORE = "Score"
VERIFIED = "Verified"  # a reviewer's yes/no per selection: a table with it is truth (its yes rows)
# the Verified cells read as each verdict (case aside); any other cell, e.g. unsure, is neither
YES, NO = ("yes", "y", "true", "1"), ("no", "n", "false", "0")
BEGIN_FILE = "Begin File"
BEGIN_PATH = "Begin Path"
FILE_OFFSET = "File Offset (s)"
BEGIN_DATE = "Begin Date"
BEGIN_CLOCK = "Begin Clock Time"
PEAK = "Peak Score Time (s)"
# the label's column when none is named and there is no Annotation column: the first present
LABEL_COLUMNS = ("Tags", "Species", "Call Type", "Label", "Class")
# read and written by this module; Delta Freq is derived from the box, so never carried along
KNOWN = {*BASE_COLUMNS, ANNOTATION, SCORE, BEGIN_FILE, BEGIN_PATH, FILE_OFFSET, BEGIN_DATE,
         BEGIN_CLOCK, PEAK, "Delta Freq (Hz)"}  # fmt: skip
REQUIRED = ("Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)")


@dataclass(frozen=True)
class Selection:
    """One time-frequency box: times in seconds from the start of the recording (or of the file
    sequence), bounds in Hz. ``number`` and ``row`` say where it was read; they take no part in
    equality, so a table written and read back equals what was written."""

    begin_s: float
    end_s: float
    low_hz: float
    high_hz: float
    label: str = "upcall"
    score: float | None = None  # detector confidence; None for hand or synthetic truth
    begin_path: str | None = None  # the audio file, for tables that span several files
    file_offset_s: float | None = None  # begin time within begin_path / begin_file
    begin_file: str | None = None  # Raven's Begin File: the audio file's name
    clock: datetime | None = None  # absolute time of begin_s, timezone-aware
    peak_s: float | None = None  # detector: time of the highest-scoring window
    channel: int = 1  # Raven's channel, from 1
    number: int | None = field(default=None, compare=False)  # Selection number as read
    row: int | None = field(default=None, compare=False)  # line of the table it was read from
    extra: tuple[tuple[str, str], ...] = ()  # other columns (name, cell), in order

    def __post_init__(self) -> None:
        values = (self.begin_s, self.end_s, self.low_hz, self.high_hz)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"selection bounds must be finite, got {values}")
        if self.end_s < self.begin_s or self.high_hz < self.low_hz:
            raise ValueError(f"selection must have begin <= end and low <= high, got {values}")
        texts = [("label", self.label), ("begin path", self.begin_path or ""),
                 ("begin file", self.begin_file or "")]  # fmt: skip
        texts += [(f"column {k!r}", k + v) for k, v in self.extra]
        for name, text in texts:
            if "\t" in text or "\n" in text or "\r" in text:
                raise ValueError(f"selection {name} must not contain tabs or newlines: {text!r}")
        if clash := [k for k, _ in self.extra if k in KNOWN or not k]:
            raise ValueError(f"selection extra columns must be other columns, got {clash}")
        if self.clock is not None and self.clock.utcoffset() is None:
            raise ValueError(f"selection clock must carry a time zone, got {self.clock}")
        if self.channel < 1:
            raise ValueError(f"selection channel counts from 1, got {self.channel}")


def _fmt(value: float | None) -> str:
    # Raven writes plain decimals; 6 places keep microsecond times and sub-millihertz bounds.
    return "" if value is None else f"{value:.6f}"


def clock_cells(clock: datetime) -> tuple[str, str]:
    """(Begin Date, Begin Clock Time) of a timezone-aware time, in its own offset, to the
    millisecond: ``YYYY/MM/DD``, ``HH:MM:SS.sss``; an offset other than UTC follows the time
    (``HH:MM:SS.sss+02:00``) so the cell never reads as another instant."""
    t = to_ms(clock)  # rounded to the millisecond, carrying into the date
    text = f"{t:%H:%M:%S}.{t.microsecond // 1000:03d}"
    offset = t.utcoffset()
    if offset:
        sign, minutes = ("-" if offset < timedelta(0) else "+"), abs(offset) // timedelta(minutes=1)
        text += f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return f"{t.year:04d}/{t.month:02d}/{t.day:02d}", text


def _columns(selections: Sequence[Selection], *, scores: bool) -> list[str]:
    columns = list(BASE_COLUMNS)
    for name, used in (
        (BEGIN_FILE, any(s.begin_file is not None for s in selections)),
        (BEGIN_PATH, any(s.begin_path is not None for s in selections)),
        (FILE_OFFSET, any(s.file_offset_s is not None for s in selections)),
        (BEGIN_DATE, any(s.clock is not None for s in selections)),
        (BEGIN_CLOCK, any(s.clock is not None for s in selections)),
        (PEAK, any(s.peak_s is not None for s in selections)),
        (ANNOTATION, True),
        (SCORE, scores or any(s.score is not None for s in selections)),
    ):
        if used:
            columns.append(name)
    extra = dict.fromkeys(k for s in selections for k, _ in s.extra)  # first-seen order
    return columns + list(extra)


def _cells(number: int, s: Selection) -> dict[str, str]:
    date, clock = clock_cells(s.clock) if s.clock is not None else ("", "")
    return {
        "Selection": str(number),
        "View": VIEW,
        "Channel": str(s.channel),
        "Begin Time (s)": _fmt(s.begin_s),
        "End Time (s)": _fmt(s.end_s),
        "Low Freq (Hz)": _fmt(s.low_hz),
        "High Freq (Hz)": _fmt(s.high_hz),
        "Delta Time (s)": _fmt(s.end_s - s.begin_s),
        BEGIN_FILE: s.begin_file or "",
        BEGIN_PATH: s.begin_path or "",
        FILE_OFFSET: _fmt(s.file_offset_s),
        BEGIN_DATE: date,
        BEGIN_CLOCK: clock,
        PEAK: _fmt(s.peak_s),
        ANNOTATION: s.label,
        SCORE: _fmt(s.score),
        **dict(s.extra),
    }


def write_table(
    path: str | os.PathLike, selections: Iterable[Selection], *, scores: bool = False
) -> None:
    """Write ``selections`` as a Raven selection table at ``path`` (atomically), numbered from 1.

    Optional columns appear only when some selection has them; ``scores``: the Score column
    always (a detector's table, even with no detections, must read as detections, not as truth:
    see :attr:`Table.kind`). A cell holding a double quote is quoted, so it reads back as it was.
    """
    selections = list(selections)
    columns = _columns(selections, scores=scores)
    buf = io.StringIO()
    out = csv.writer(buf, delimiter="\t", lineterminator="\n")
    out.writerow(columns)
    for number, s in enumerate(selections, start=1):
        cells = _cells(number, s)
        out.writerow([cells.get(c, "") for c in columns])
    atomic_write_text(path, buf.getvalue())


def _float(text: str, where: str, column: str, *, optional: bool = False) -> float | None:
    if optional and text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UpcallError(f"{where}: column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise UpcallError(f"{where}: column {column!r} is not finite: {text!r}")
    return value


_DATE = re.compile(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?\s*(Z|UTC|[+-]\d{2}:?\d{2})?", re.I)


def parse_clock(date: str, clock: str, where: str) -> datetime:
    """The time of a Begin Date (``YYYY/MM/DD`` or ``YYYY-MM-DD``) and Begin Clock Time
    (``HH:MM:SS[.sss]``, optionally followed by ``Z``/``UTC``/``±HH:MM``) cell: UTC unless
    the cell gives another offset (a time zone is never guessed)."""
    d, c = _DATE.fullmatch(date.strip()), _CLOCK.fullmatch(clock.strip())
    if not d or not c:
        bad = (BEGIN_DATE, date) if not d else (BEGIN_CLOCK, clock)
        raise UpcallError(
            f"{where}: column {bad[0]!r} is not a date/time Raven writes "
            f"(YYYY/MM/DD, HH:MM:SS.sss): {bad[1]!r}"
        )
    zone = UTC
    if (off := c[5]) and off.upper() not in ("Z", "UTC"):
        minutes = int(off[1:3]) * 60 + int(off[-2:])
        zone = timezone(timedelta(minutes=-minutes if off[0] == "-" else minutes))
    micro = int((c[4] or "").ljust(6, "0")[:6])
    try:
        return datetime(int(d[1]), int(d[2]), int(d[3]), int(c[1]), int(c[2]), int(c[3]), micro,
                        tzinfo=zone)  # fmt: skip
    except ValueError as e:
        raise UpcallError(f"{where}: no such date/time {date} {clock}: {e}") from None


def _int(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[0-9]+", text.strip()) else None


def _parse_row(cells: dict[str, str], where: str, label: str | None, row: int) -> Selection:
    begin, end = (_float(cells[c], where, c) for c in ("Begin Time (s)", "End Time (s)"))
    low, high = (_float(cells[c], where, c) for c in ("Low Freq (Hz)", "High Freq (Hz)"))
    score, offset, peak = (
        _float(cells.get(c, ""), where, c, optional=True) for c in (SCORE, FILE_OFFSET, PEAK)
    )
    date, clock = cells.get(BEGIN_DATE, ""), cells.get(BEGIN_CLOCK, "")
    channel = cells.get("Channel", "") or "1"
    if _int(channel) is None or int(channel) < 1:
        raise UpcallError(f"{where}: column 'Channel' is not a channel number (1, 2, ...): "
                          f"{channel!r}")  # fmt: skip
    extra = tuple((k, v) for k, v in cells.items() if k not in KNOWN and v)  # empty: none
    try:
        return Selection(
            begin,
            end,
            low,
            high,
            label=cells.get(label, "") if label else "",
            score=score,
            begin_path=cells.get(BEGIN_PATH) or None,
            file_offset_s=offset,
            begin_file=cells.get(BEGIN_FILE) or None,
            # a time of day without its date (or the reverse) is no time
            clock=parse_clock(date, clock, where) if date and clock else None,
            peak_s=peak,
            channel=int(channel),
            number=_int(cells.get("Selection", "")),
            row=row,
            extra=extra,
        )
    except ValueError as e:
        raise UpcallError(f"{where}: {e}") from None


def verdict(selection: Selection) -> str | None:
    """A reviewer's verdict on ``selection`` from its ``Verified`` cell: ``"yes"``, ``"no"``,
    ``"unsure"`` (any other text), or None (no cell, or an empty one: not reviewed)."""
    cell = dict(selection.extra).get(VERIFIED, "").strip().lower()
    if not cell:
        return None
    return "yes" if cell in YES else "no" if cell in NO else "unsure"


class NotATable(UpcallError):
    """A text file that is not a selection table at all (no header of one)."""


@dataclass(frozen=True)
class Table:
    """A selection table as read: its columns, its selections (each once) and, where the table
    has a ``Verified`` column, which of them a reviewer marked ``yes``."""

    path: Path
    columns: tuple[str, ...]
    selections: list[Selection]
    verified: tuple[bool, ...] | None = field(default=None)  # per selection; None: no column
    label_column: str | None = None  # the column the labels came from; None: no labels

    @property
    def kind(self) -> str:
        """``"truth"`` or ``"detections"``, from the content: a reviewed table (``Verified``) is
        truth; an unreviewed one with scores is a detector's output; one without either is a
        hand or synthetic annotation, i.e. truth."""
        if self.verified is not None:
            return "truth"
        return "detections" if SCORE in self.columns else "truth"

    def truth(self) -> list[Selection]:
        """The selections that are true calls: a reviewed table's ``yes`` rows, else all."""
        if self.verified is None:
            return list(self.selections)
        return [s for s, yes in zip(self.selections, self.verified, strict=True) if yes]

    def labels(self) -> set[str]:
        """The labels its selections carry."""
        return {s.label for s in self.selections}


def read_table(path: str | os.PathLike, *, label_column: str | None = None) -> list[Selection]:
    """The selections of a Raven table (see :func:`read`)."""
    return read(path, label_column=label_column).selections


def _text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UpcallError(f"{path}: cannot read selection table: {e}") from None
    for encoding in ("utf-8-sig", "cp1252"):  # Raven on Windows may write the ANSI code page
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UpcallError(f"{path}: cannot read selection table: neither UTF-8 nor Windows-1252 text")


def _label_column(path: Path, header: list[str], label_column: str | None) -> str | None:
    if label_column is not None:
        if label_column not in header:
            have = ", ".join(repr(c) for c in header)
            raise UpcallError(f"{path}: no label column {label_column!r}; its columns: {have}")
        return label_column
    return next((c for c in (ANNOTATION, *LABEL_COLUMNS) if c in header), None)


def _rows(path: Path, text: str) -> Iterable[tuple[int, list[str]]]:
    """(line number, cells stripped of spaces) of each line that is not blank."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    line = 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield line, [c.strip() for c in cells]
            line = reader.line_num + 1
    except csv.Error as e:
        raise UpcallError(f"{path}:{line}: {e}") from None


def _trim(cells: list[str], keep: int) -> list[str]:
    """``cells`` less empty ones after the first ``keep`` (trailing tabs)."""
    end = len(cells)
    while end > keep and not cells[end - 1]:
        end -= 1
    return cells[:end]


def read(path: str | os.PathLike, *, label_column: str | None = None) -> Table:
    """Read a Raven selection table; a malformed one raises UpcallError naming the file and line.

    Columns are found by name, so tables written by Raven itself (measurement columns, other
    orders) read too. The label comes from ``label_column`` (absent: an error naming the columns
    there are), else ``Annotation``, else the first of :data:`LABEL_COLUMNS`, else it is empty.
    Raven's usual export lists each selection once per view (``Waveform 1`` and ``Spectrogram 1``
    rows with the same ``Selection`` number): each number counts once, its first row. ``Begin
    Date`` + ``Begin Clock Time`` become :attr:`Selection.clock`; columns this module does not
    know go to :attr:`Selection.extra`.
    """
    path = Path(path)
    rows = iter(_rows(path, _text(path)))
    _, header = next(rows, (1, []))
    header = _trim(header, 0)
    if not header:
        raise NotATable(f"{path}: empty file, expected a Raven selection table header")
    if missing := [c for c in REQUIRED if c not in header]:
        raise NotATable(f"{path}:1: not a Raven selection table, missing column(s) {missing}")
    label = _label_column(path, header, label_column)
    selections, verified, seen = [], [], {}
    for number, cells in rows:
        cells = _trim(cells, len(header))
        if len(cells) != len(header):
            raise UpcallError(
                f"{path}:{number}: expected {len(header)} tab-separated fields, got {len(cells)}"
            )
        row = dict(zip(header, cells, strict=True))
        selection = _parse_row(row, f"{path}:{number}", label, number)
        if (key := row.get("Selection", "")) != "":
            if key in seen:
                # the same selection in another view; a different one under the same number
                # (tables pasted together) would otherwise be dropped without a word
                if seen[key] != (selection.begin_s, selection.end_s):
                    raise UpcallError(
                        f"{path}:{number}: selection {key} appears again with other times; "
                        "number each selection once (one row per view)"
                    )
                continue
            seen[key] = (selection.begin_s, selection.end_s)
        selections.append(selection)
        verified.append(row.get(VERIFIED, "").lower() in YES)
    return Table(
        path,
        tuple(header),
        selections,
        tuple(verified) if VERIFIED in header else None,
        label,
    )
