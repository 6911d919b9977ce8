"""Annotated recordings for tests: synthetic recordings with time-stamped names and their truth
rewritten as Raven Pro writes selection tables.

Raven Pro lists each selection once per view (``Waveform 1`` and ``Spectrogram 1`` rows with the
same ``Selection`` number), adds measurement columns (``Delta Time (s)``, ``Delta Freq (Hz)``),
puts the user's annotation columns last under names the user chose (``Tags`` here), ends lines
with CRLF on Windows and, from some editors, starts with a byte-order mark. A table over a file
sequence counts ``Begin Time (s)`` from the start of the sequence (the files' lengths added, gaps
between them ignored) and locates each selection with ``Begin File`` and ``File Offset (s)``.

The text is written here, not through :mod:`upcall.audio.raven`, so the tests read what Raven
writes rather than what our own writer writes.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import soundfile as sf

from upcall.audio.recording import RecordingSettings, write_recording

WAVEFORM, SPECTROGRAM = "Waveform 1", "Spectrogram 1"


class Box(NamedTuple):
    """One selection of a truth table: seconds from the start of its file, Hz, label."""

    begin_s: float
    end_s: float
    low_hz: float
    high_hz: float
    label: str


def read_boxes(table: Path) -> list[Box]:
    """The selections of a table ``synth-recording`` wrote, read by column name (plain csv)."""
    with table.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        Box(
            float(r["Begin Time (s)"]),
            float(r["End Time (s)"]),
            float(r["Low Freq (Hz)"]),
            float(r["High Freq (Hz)"]),
            r.get("Annotation", ""),
        )
        for r in rows
    ]


def _write(out: Path, header: list[str], rows: list[list[str]], *, crlf: bool, bom: bool) -> Path:
    end = "\r\n" if crlf else "\n"
    text = end.join("\t".join(cells) for cells in [header, *rows]) + end
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return out


def _measures(box: Box, begin: float) -> list[str]:
    # Raven's own precision: times to the nanosecond, frequencies to the millihertz
    end = begin + (box.end_s - box.begin_s)
    return [
        f"{begin:.9f}",
        f"{end:.9f}",
        f"{box.low_hz:.3f}",
        f"{box.high_hz:.3f}",
        f"{box.end_s - box.begin_s:.9f}",
        f"{box.high_hz - box.low_hz:.3f}",
    ]


MEASURES = [
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Delta Time (s)",
    "Delta Freq (Hz)",
]


def raven_style(
    truth_table: Path,
    out_path: Path,
    *,
    begin_file: str | None = None,
    label_column: str = "Tags",
    crlf: bool = True,
    bom: bool = False,
) -> Path:
    """Rewrite ``truth_table`` (from ``synth-recording``) at ``out_path`` as Raven Pro writes a
    table for one file: two rows (views) per selection, measurement columns, ``Begin File``
    (when given: the recording's file name) and the label under ``label_column``."""
    header = ["Selection", "View", "Channel", *MEASURES]
    header += ["Begin File"] if begin_file else []
    header.append(label_column)
    rows = []
    for number, box in enumerate(read_boxes(truth_table), start=1):
        for view in (WAVEFORM, SPECTROGRAM):
            cells = [str(number), view, "1", *_measures(box, box.begin_s)]
            cells += [begin_file] if begin_file else []
            rows.append([*cells, box.label])
    return _write(out_path, header, rows, crlf=crlf, bom=bom)


def file_sequence_table(
    out_path: Path,
    parts: list[tuple[Path, Path]],
    *,
    label_column: str = "Tags",
    begin_path: bool = True,
    crlf: bool = True,
    bom: bool = False,
) -> Path:
    """One Raven table over the file sequence ``parts`` ((recording, its truth table), in
    sequence order): ``Begin Time (s)`` from the start of the sequence (the earlier files'
    lengths added), ``Begin File``, ``Begin Path`` (when ``begin_path``), ``File Offset (s)``."""
    header = ["Selection", "View", "Channel", *MEASURES, "Begin File"]
    header += ["Begin Path"] if begin_path else []
    header += ["File Offset (s)", label_column]
    rows, number, before = [], 0, 0.0
    for recording, truth in parts:
        for box in read_boxes(truth):
            number += 1
            for view in (WAVEFORM, SPECTROGRAM):
                cells = [str(number), view, "1", *_measures(box, before + box.begin_s)]
                cells.append(recording.name)
                cells += [str(recording)] if begin_path else []
                rows.append([*cells, f"{box.begin_s:.9f}", box.label])
        info = sf.info(recording)
        before += info.frames / info.samplerate
    return _write(out_path, header, rows, crlf=crlf, bom=bom)


@dataclass(frozen=True)
class RecordingSpec:
    """One synthetic recording to make: where (its name carries its start), how long, how."""

    rel: str  # under the recordings folder; the top folder is the site
    start: datetime  # what the name says (UTC)
    minutes: float = 4.0
    seed: int = 0
    rate: int = 2000
    difficulty: str = "easy"  # calls a tiny, briefly trained network can find
    bom: bool = False  # its Raven-style table starts with a byte-order mark


# Two sites; site1 is duty-cycled (a 54-min gap), its second file runs past 13:00; site2 is a
# SoundTrap (SERIAL.YYMMDDHHMMSS) at 8 kHz in FLAC, from 15:00 (so 14:00-15:00 has no audio).
SPECS = (
    RecordingSpec("site1/AM01_20240301_120000.wav", datetime(2024, 3, 1, 12, 0, tzinfo=UTC), seed=11),
    RecordingSpec("site1/AM01_20240301_125800.wav", datetime(2024, 3, 1, 12, 58, tzinfo=UTC), seed=12),
    RecordingSpec(
        "site2/5763.240301150000.flac",
        datetime(2024, 3, 1, 15, 0, tzinfo=UTC),
        seed=13,
        rate=8000,
        bom=True,
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Annotated:
    """A recording :func:`annotated_recordings` made."""

    spec: RecordingSpec
    path: Path  # the audio
    truth: Path  # synth-recording's own table (kept apart from the recordings)
    table: Path | None  # its Raven-style table (None: covered by a file-sequence table)
    boxes: list[Box]  # the truth: every labelled sound

    @property
    def calls(self) -> list[Box]:
        return [b for b in self.boxes if b.label == "upcall"]

    @property
    def duration_s(self) -> float:
        return self.spec.minutes * 60.0


@dataclass(frozen=True)
class Survey:
    """The folders :func:`annotated_recordings` fills and what it put there."""

    recordings: Path  # FOLDER/recordings: audio only
    tables: Path  # FOLDER/tables: Raven-style tables, in a tree parallel to the recordings
    recorded: list[Annotated]
    sequence: Path | None  # the file-sequence table, when one was asked for
    calls: Path  # FOLDER/calls: the up-calls alone (REL.selections.txt), for `upcall evaluate`


def annotated_recordings(
    folder: Path,
    specs: tuple[RecordingSpec, ...] = SPECS,
    *,
    sequence_site: str | None = None,
    label_column: str = "Tags",
) -> Survey:
    """Make ``specs``' recordings under FOLDER/recordings (``synth-recording --label-others``:
    up-calls and other labelled sounds) and their Raven-style tables under FOLDER/tables at the
    same relative paths, named ``REC.Table.1.selections.txt`` as Raven names them. The
    recordings of ``sequence_site`` get one file-sequence table instead
    (FOLDER/tables/SITE/SITE.Table.1.selections.txt, tied to them by Begin File / Begin Path).
    The synthetic truth tables go to FOLDER/truth and their up-calls alone to FOLDER/calls (both
    REL.selections.txt)."""
    recordings, tables, truths = folder / "recordings", folder / "tables", folder / "truth"
    made, sequence = [], []
    for spec in specs:
        audio = recordings / spec.rel
        audio.parent.mkdir(parents=True, exist_ok=True)
        settings = RecordingSettings(
            minutes=spec.minutes,
            seed=spec.seed,
            rate=spec.rate,
            difficulty=spec.difficulty,
            label_others=True,
        )
        write_recording(audio, settings)
        truth = truths / f"{spec.rel}.selections.txt"
        truth.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(f"{audio}.selections.txt", truth)  # only audio in the recordings folder
        table = None
        if spec.rel.split("/")[0] == sequence_site:
            sequence.append((audio, truth))
        else:
            rel = Path(spec.rel)
            table = tables / rel.parent / f"{rel.stem}.Table.1.selections.txt"
            raven_style(truth, table, label_column=label_column, bom=spec.bom)
        made.append(Annotated(spec, audio, truth, table, read_boxes(truth)))
        calls_only(truth, folder / "calls" / f"{spec.rel}.selections.txt")
    out = None
    if sequence:
        out = tables / sequence_site / f"{sequence_site}.Table.1.selections.txt"
        file_sequence_table(out, sequence, label_column=label_column)
    return Survey(recordings, tables, made, out, folder / "calls")


def calls_only(truth_table: Path, out_path: Path, *, label: str = "upcall") -> Path:
    """The selections of ``truth_table`` labelled ``label``, as a plain one-view table."""
    header = ["Selection", "View", "Channel", *MEASURES[:4], "Annotation"]
    boxes = [b for b in read_boxes(truth_table) if b.label == label]
    rows = [
        [str(n), SPECTROGRAM, "1", *_measures(b, b.begin_s)[:4], b.label]
        for n, b in enumerate(boxes, start=1)
    ]
    return _write(out_path, header, rows, crlf=False, bom=False)
