"""Raven selection tables: the tab-separated text format bioacousticians annotate and review in.

One row per selection (a time-frequency box). The fixed columns are Raven's own:
``Selection, View, Channel, Begin Time (s), End Time (s), Low Freq (Hz), High Freq (Hz)``; we add
``Annotation`` (the label), and where used ``Score`` (a detector's confidence) and, for tables that
span several files, ``Begin Path`` and ``File Offset (s)``. The synthetic recording writes its truth
through this module and the detector writes its results through it, so both read back the same way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from upcall.errors import UpcallError
from upcall.fsutil import atomic_write_text

VIEW = "Spectrogram 1"  # Raven shows a selection in the view it was drawn in; one view here
CHANNEL = 1  # mono audio

BASE_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Annotation",
)
SCORE = "Score"
VERIFIED = "Verified"  # a reviewer's yes/no per selection: a table with it is truth (its yes rows)
BEGIN_PATH = "Begin Path"
FILE_OFFSET = "File Offset (s)"


@dataclass(frozen=True)
class Selection:
    """One time-frequency box: times in seconds from the start of the recording, bounds in Hz."""

    begin_s: float
    end_s: float
    low_hz: float
    high_hz: float
    label: str = "upcall"
    score: float | None = None  # detector confidence; None for hand or synthetic truth
    begin_path: str | None = None  # the audio file, for tables that span several files
    file_offset_s: float | None = None  # begin time within begin_path

    def __post_init__(self) -> None:
        values = (self.begin_s, self.end_s, self.low_hz, self.high_hz)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"selection bounds must be finite, got {values}")
        if self.end_s < self.begin_s or self.high_hz < self.low_hz:
            raise ValueError(f"selection must have begin <= end and low <= high, got {values}")
        for name, text in (("label", self.label), ("begin path", self.begin_path or "")):
            if "\t" in text or "\n" in text:
                raise ValueError(f"selection {name} must not contain tabs or newlines: {text!r}")


def _columns(selections: Sequence[Selection], *, scores: bool = False) -> list[str]:
    columns = list(BASE_COLUMNS)
    if scores or any(s.score is not None for s in selections):
        columns.append(SCORE)
    if any(s.begin_path is not None for s in selections):
        columns += [BEGIN_PATH, FILE_OFFSET]
    return columns


def _fmt(value: float | None) -> str:
    # Raven writes plain decimals; 6 places keep microsecond times and sub-millihertz bounds.
    return "" if value is None else f"{value:.6f}"


def write_table(
    path: str | os.PathLike, selections: Iterable[Selection], *, scores: bool = False
) -> None:
    """Write ``selections`` as a Raven selection table at ``path`` (atomically), numbered from 1.

    Optional columns (Score, Begin Path / File Offset) appear only when some selection has them;
    ``scores``: the Score column always (a detector's table, even with no detections, must read
    as detections, not as truth: see :attr:`Table.kind`).
    """
    selections = list(selections)
    columns = _columns(selections, scores=scores)
    lines = ["\t".join(columns)]
    for number, s in enumerate(selections, start=1):
        row = [
            str(number),
            VIEW,
            str(CHANNEL),
            _fmt(s.begin_s),
            _fmt(s.end_s),
            _fmt(s.low_hz),
            _fmt(s.high_hz),
            s.label,
        ]
        if SCORE in columns:
            row.append(_fmt(s.score))
        if BEGIN_PATH in columns:
            row += [s.begin_path or "", _fmt(s.file_offset_s)]
        lines.append("\t".join(row))
    atomic_write_text(path, "\n".join(lines) + "\n")


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


def _parse_row(cells: dict[str, str], where: str) -> Selection:
    begin, end = (_float(cells[c], where, c) for c in ("Begin Time (s)", "End Time (s)"))
    low, high = (_float(cells[c], where, c) for c in ("Low Freq (Hz)", "High Freq (Hz)"))
    score = _float(cells.get(SCORE, ""), where, SCORE, optional=True)
    offset = _float(cells.get(FILE_OFFSET, ""), where, FILE_OFFSET, optional=True)
    try:
        return Selection(
            begin,
            end,
            low,
            high,
            label=cells.get("Annotation", ""),
            score=score,
            begin_path=cells.get(BEGIN_PATH) or None,
            file_offset_s=offset,
        )
    except ValueError as e:
        raise UpcallError(f"{where}: {e}") from None


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


def read_table(path: str | os.PathLike) -> list[Selection]:
    """The selections of a Raven table (see :func:`read`)."""
    return read(path).selections


def read(path: str | os.PathLike) -> Table:
    """Read a Raven selection table; a malformed one raises UpcallError naming the file and line.

    Columns are found by name, so tables written by Raven itself (extra measurement columns, other
    orders) read too. Without an ``Annotation`` column the label is empty. Raven's usual export
    lists each selection once per view (``Waveform 1`` and ``Spectrogram 1`` rows with the same
    ``Selection`` number): each number counts once, its first row.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UpcallError(f"{path}: cannot read selection table: {e}") from None
    lines = text.splitlines()
    if not lines:
        raise NotATable(f"{path}: empty file, expected a Raven selection table header")
    header = lines[0].split("\t")
    required = ("Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)")
    missing = [c for c in required if c not in header]
    if missing:
        raise NotATable(f"{path}:1: not a Raven selection table, missing column(s) {missing}")
    selections, verified, seen = [], [], {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise UpcallError(
                f"{path}:{number}: expected {len(header)} tab-separated fields, got {len(cells)}"
            )
        row = dict(zip(header, cells, strict=True))
        selection = _parse_row(row, f"{path}:{number}")
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
        verified.append(row.get(VERIFIED, "").strip().lower() in ("yes", "y", "true", "1"))
    return Table(
        path,
        tuple(header),
        selections,
        tuple(verified) if VERIFIED in header else None,
    )
