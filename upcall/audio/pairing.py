"""Which selection table belongs to which recording: the one rule every command pairs them by.

A table belongs to recording ``rec.wav`` when it sits at the same relative path (tables may live
in a parallel folder tree) and is named as Raven or upcall name them (:data:`TABLE_PATTERNS`), or
when its ``Begin File`` / ``Begin Path`` names it. A file-sequence table (``Begin Time (s)`` from
the start of the sequence) is split by file, each selection moved to its file's own time line
(``File Offset (s)``). A bare name (the table's own, a ``Begin File``) stands for a recording in
the table's own relative folder, a ``Begin Path`` for itself (relative to the table's input
folder when inside it). Names are compared without the audio suffix, path by path: the same
relative path; else the one recording whose path ends the name, or is ended by it (a ``Begin
Path`` written on another machine, recordings given as one file or one deployment's folder,
tables in one folder for recordings in several); else, for a bare name, the one in the nearest
folder above the table's (tables in a subfolder beside the audio). None, several, or one
recording named by two different paths (``site1/rec`` and ``site3/rec``) is an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from upcall.audio import raven, stream
from upcall.audio.clip import AUDIO_SUFFIXES
from upcall.audio.raven import Selection
from upcall.errors import BatchReport, UpcallError

# rec: the recording's file name less its suffix; N: Raven's table number
TABLE_PATTERNS = (
    "rec.Table.N.selections.txt",  # Raven's default
    "rec.selections.txt",
    "rec.wav.selections.txt",
    "rec.wav.detections.txt",  # what `upcall detect` writes
)
COMBINED = "detections.txt"  # beside detect.json: detect's combined table, rows also per file
TOLERANCE_S = 1e-3  # a selection may end this far past its file's end (6-decimal rounding)
_RAVEN_NAME = re.compile(r"(.+)\.Table\.\d+\.selections\.txt", re.IGNORECASE)
_SUFFIXES = (".selections.txt", ".detections.txt")

Key = tuple[str, ...]  # a recording's relative path, path parts, its audio suffix taken off


def _strip_audio(name: str) -> str:
    low = name.lower()
    for suffix in AUDIO_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def key(path: str | os.PathLike) -> Key:
    """``site1/rec.wav`` → ``("site1", "rec")`` (an absolute path keeps its root part; a
    Windows path, as Raven there writes Begin Path, splits at its backslashes)."""
    parts = PurePosixPath(os.fspath(path).replace("\\", "/")).parts
    return (*parts[:-1], _strip_audio(parts[-1])) if parts else ()


def recording_name(name: str) -> str | None:
    """The recording's file name a table's file name holds, its audio suffix kept where the
    name has one (``rec.wav.detections.txt`` → ``rec.wav``, ``rec.Table.1.selections.txt`` →
    ``rec``), or None for a name of none of :data:`TABLE_PATTERNS`."""
    if m := _RAVEN_NAME.fullmatch(name):
        return m[1]
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def table_recording(name: str) -> str | None:
    """The recording a table's file name names, less its audio suffix (``rec.wav.detections.txt``
    → ``rec``), or None for a name of none of :data:`TABLE_PATTERNS`."""
    found = recording_name(name)
    return None if found is None else _strip_audio(found)


def find_tables(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """(table, path under the deepest folder holding every input) for each selection table, as
    :func:`upcall.audio.stream.find_recordings` finds recordings: folders searched recursively
    for ``*.txt`` that are selection tables (other text is passed over; a combined table of
    ``upcall detect`` beside its ``detect.json`` too: its rows are in the per-file tables)."""
    found = []
    for p in inputs:
        if not p.is_dir():
            if not p.is_file():
                raise UpcallError(f"{p}: no such file or folder")
            raven.read(p)  # a file named on purpose must be a table: its error otherwise
            found.append(p)
            continue
        n = len(found)
        for f in sorted(p.rglob("*")):
            if f.suffix.lower() != ".txt" or not f.is_file() or _combined(f):
                continue
            try:
                raven.read(f)
            except raven.NotATable:
                continue  # notes, lists: not selection tables
            found.append(f)
        if len(found) == n:
            raise UpcallError(f"{p}: no selection tables (*.txt with Raven's columns) in it")
    roots = [os.path.abspath(p if p.is_dir() else p.parent) for p in inputs]
    base = os.path.commonpath(roots) if roots else os.getcwd()
    out, seen = [], set()
    for f in found:
        if (a := os.path.abspath(f)) not in seen:
            seen.add(a)
            out.append((f, Path(os.path.relpath(a, base))))
    return out


def _combined(path: Path) -> bool:
    return path.name == COMBINED and (path.parent / "detect.json").is_file()


@dataclass(frozen=True)
class Place:
    """Where a table puts one selection (or, without one, the table itself): the recording it
    names and the selection in that recording's own time line."""

    name: Key  # the recording named: a relative path (or absolute, from Begin Path)
    bare: bool  # name is a file's name put in the table's own folder (its name, Begin File)
    said: str  # how the table names it, for messages: "its name", "Begin File 'x.wav'"
    where: str  # "table:row" (or "table"), for messages
    selection: Selection | None = None


def _root(table: raven.Table, rel: Path) -> Path:
    return Path(os.path.abspath(table.path)).parents[len(rel.parts) - 1]


def places(table: raven.Table, rel: Path, *, rows: list[Selection] | None = None) -> list[Place]:
    """Where ``table`` (found at ``rel`` under its input folder) puts its selections, each with
    the recording it names: its ``Begin Path`` or ``Begin File``, else the table's file name; and
    the recording the name names, where no selection does or the table is empty (an analyst's
    table without calls still says the recording was checked). ``rows``: these selections of
    the table instead of all. A table or selection that names no recording is an error."""
    folder = key(rel)[:-1]
    named = table_recording(table.path.name)
    own = None if named is None else Place((*folder, named), True, "its name", str(table.path))
    sequence = raven.BEGIN_FILE in table.columns or raven.BEGIN_PATH in table.columns
    files = {s.begin_path or s.begin_file for s in table.selections} - {None}
    if sequence and raven.FILE_OFFSET not in table.columns and len(files) > 1:
        raise UpcallError(
            f"{table.path}: selections in {len(files)} files but no 'File Offset (s)' column: "
            "where each lies in its file is unknown"
        )
    rows = table.selections if rows is None else rows
    if own is None and (not sequence or not rows):
        raise UpcallError(
            f"{table.path}: names no recording: neither a table name of the forms "
            f"{', '.join(TABLE_PATTERNS)} (rec: the recording's name less its suffix) "
            "nor a Begin File / Begin Path column"
        )
    out = [] if own is None or (sequence and rows) else [own]
    for s in rows:
        where = f"{table.path}:{s.row}" if s.row else str(table.path)
        if s.begin_path:
            path, root = Path(s.begin_path), _root(table, rel)
            inside = path.is_absolute() and os.path.abspath(path).startswith(f"{root}{os.sep}")
            name = key(os.path.relpath(path, root)) if inside else key(s.begin_path)
            said, bare = f"Begin Path {s.begin_path!r}", False
        elif s.begin_file:
            name = (*folder, *key(s.begin_file)[-1:])
            said, bare = f"Begin File {s.begin_file!r}", True
        elif own is not None:
            name, said, bare = own.name, own.said, True
        else:
            raise UpcallError(f"{where}: names no recording: empty Begin File / Begin Path")
        if (s.begin_path or s.begin_file) and s.file_offset_s is not None:
            s = replace(s, begin_s=s.file_offset_s, end_s=s.file_offset_s + s.end_s - s.begin_s)
        out.append(Place(name, bare, said, where, s))
    return out


def ends(a: Key, b: Key) -> bool:
    """Whether one path ends the other, part by part (``site1/rec`` and ``/x/site1/rec``)."""
    n = min(len(a), len(b))
    return a[len(a) - n :] == b[len(b) - n :]


def resolve(name: Key, keys: Iterable[Key], *, bare: bool = False) -> list[Key]:
    """The recordings among ``keys`` that ``name`` names: the one of the same relative path, else
    all whose path ends the name or is ended by it; for a ``bare`` name (a file's name in the
    table's folder ``name[:-1]``) found so nowhere, the one of that file name in the nearest
    folder above the table's (tables in a subfolder beside the audio). Several: ambiguous."""
    keys = list(keys)
    if name in keys:
        return [name]
    found = [k for k in keys if ends(k, name)]
    if found or not bare:
        return found
    above = [k for k in keys if k[-1] == name[-1] and name[: len(k) - 1] == k[:-1]]
    return [k for k in above if len(k) == max(map(len, above))]


@dataclass
class Annotations:
    """The selections of one recording, from every table that names it, times from the start of
    this file (a file sequence's selections moved there); ``sources[i]`` is ``selections[i]``'s
    table (its ``row`` is the line there)."""

    recording: Path
    rel: Path
    selections: list[Selection] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)

    def where(self, i: int) -> str:
        """``table:row`` of selection ``i``, for messages."""
        row = self.selections[i].row
        return f"{self.sources[i]}:{row}" if row else str(self.sources[i])


def pair(
    recordings: list[tuple[Path, Path]],
    tables: list[tuple[Path, Path]],
    *,
    label_column: str | None = None,
    truth: bool = False,
    no_rows: bool = False,
    report: BatchReport | None = None,
) -> list[Annotations]:
    """One :class:`Annotations` per recording that some table covers, in ``recordings``' order.

    ``recordings`` and ``tables`` are (file, relative path) as :func:`stream.find_recordings` and
    :func:`find_tables` give them; ``label_column`` as :func:`raven.read` takes it; ``truth``:
    of a reviewed table (``Verified``) only its ``yes`` rows; ``no_rows`` (with ``truth``): every
    row of a reviewed table, each with its verdict (:func:`raven.verdict`; an unreviewed row's
    is ``unreviewed``): ``no`` rows are the detector's false alarms (hard negatives), unsure and
    unreviewed ones places to keep clear of. UpcallError (one line, naming the
    table and row) for a table or selection that names no recording given, or names several, or
    a selection outside its file; with a ``report``, a recording that does not open or holds a
    selection outside it is reported there and left out instead (a batch goes on without it).
    """
    by_key: dict[Key, tuple[Path, Path]] = {}
    dupes: dict[Key, list[str]] = {}  # rec.wav and rec.flac in one folder: one name
    for f, rel in recordings:
        if (k := key(rel)) in by_key:
            dupes.setdefault(k, [str(by_key[k][1])]).append(str(rel))
        by_key.setdefault(k, (f, rel))
    by_path = {os.path.abspath(f): key(rel) for f, rel in recordings}
    out: dict[Key, Annotations] = {}
    names: dict[Key, Place] = {}  # the first name each recording was found by
    for path, rel in tables:
        table = raven.read(path, label_column=label_column)
        for place in places(table, rel, rows=_rows(table, truth=truth, no_rows=no_rows)):
            k = _recording(place, by_key, by_path)
            first = names.setdefault(k, place)
            if k in dupes:
                raise UpcallError(
                    f"{place.where}: {place.said} names several recordings ({', '.join(dupes[k])})"
                )
            if not ends(first.name, place.name):
                raise UpcallError(
                    f"{place.where}: {place.said} and {first.where}: {first.said} name "
                    f"{by_key[k][1]} by different paths; give the recordings and tables as "
                    "folders with the same layout"
                )
            f, r = by_key[k]
            a = out.setdefault(k, Annotations(f, r))
            if place.selection is not None:
                a.selections.append(place.selection)
                a.sources.append(path)
            if path not in a.tables:
                a.tables.append(path)
    for k, a in list(out.items()):
        try:
            _check_inside(a)
        except UpcallError as e:
            if report is None:
                raise
            report.fail(a.recording, str(e).removeprefix(f"{a.recording}: "))
            del out[k]
    return [out[key(rel)] for _, rel in recordings if key(rel) in out]


def _rows(table: raven.Table, *, truth: bool, no_rows: bool) -> list[Selection] | None:
    """The selections :func:`pair` takes from ``table`` (None: all)."""
    if not truth:
        return None
    if table.verified is None or not no_rows:
        return table.truth()
    unreviewed = ((raven.VERIFIED, "unreviewed"),)
    return [
        s if raven.verdict(s) else replace(s, extra=(*s.extra, *unreviewed))
        for s in table.selections
    ]


def _recording(place: Place, by_key: dict[Key, tuple[Path, Path]], by_path: dict[str, Key]) -> Key:
    s = place.selection
    if (
        s is not None
        and s.begin_path
        and (k := by_path.get(os.path.abspath(s.begin_path))) is not None
    ):
        return k
    found = resolve(place.name, by_key, bare=place.bare)
    if len(found) == 1:
        return found[0]
    name = PurePosixPath(*place.name)
    if not found:
        raise UpcallError(
            f"{place.where}: {place.said} names no recording given ({name}.*); give that "
            "recording too (or leave the table out), with recordings and tables as folders of "
            "the same layout (parallel trees)"
        )
    raise UpcallError(
        f"{place.where}: {place.said} names several recordings "
        f"({', '.join(str(by_key[k][1]) for k in found[:3])}); put the table in a folder "
        "tree parallel to the recordings'"
    )


def _check_inside(a: Annotations) -> None:
    if not a.selections:
        return
    duration = stream.duration_s(a.recording)
    for i, s in enumerate(a.selections):
        if s.begin_s < 0 or s.end_s > duration + TOLERANCE_S:
            raise UpcallError(
                f"{a.where(i)}: selection {s.number or '?'} at {s.begin_s:g}–{s.end_s:g} s "
                f"lies outside {a.rel} ({duration:g} s long)"
            )
