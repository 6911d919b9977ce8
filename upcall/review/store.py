"""The review's detections and verdicts: detection tables in, VERIFIED tables out.

Each per-recording detection table (``DIR/<rel>.detections.txt`` of a detect folder, or tables
named as the pairing rule names them) has a twin ``VERIFIED/<rel>.selections.txt``: the same
rows with the columns ``Verified`` (yes / no / unsure; empty: not yet seen) and ``Note``. Every
verdict rewrites its table at once (atomically, under a lock of VERIFIED), merged with what is
on disk, so a killed server loses nothing, two servers or tabs lose no row (last write wins per
row) and reopening continues. A row's revision is a digest of its verdict and note: a page
sends back the one it loaded, and a different one on disk is a visible warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from upcall.audio import pairing, raven, stream
from upcall.audio.raven import Selection
from upcall.errors import UpcallError
from upcall.lock import folder_lock
from upcall.review import paths
from upcall.survey.effort import read_effort

VERDICTS = ("yes", "no", "unsure")
VERIFIED, NOTE = "Verified", "Note"
LOCK = ".upcall-review.lock"
log = logging.getLogger("upcall.review")


@dataclass
class Recording:
    """One detection table and the recording it belongs to."""

    rel: str  # the recording's path in the tree: VERIFIED/<rel>.selections.txt
    table: Path
    selections: list[Selection]
    audio: Path | None = None  # None: see problem
    problem: str | None = None  # one line: missing audio, a path refused, a bad VERIFIED table
    verdicts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    writable: bool = True  # False: its VERIFIED table could not be read, so it is never replaced


def revision(verdict: str, note: str) -> str:
    """What a page saw of a row: changes whenever its verdict or note does."""
    return hashlib.sha1(f"{verdict}\0{note}".encode()).hexdigest()[:12]


def clean_note(note: str) -> str:
    """A note as one table cell: tabs and line ends become spaces."""
    return " ".join(note.replace("\t", " ").splitlines()).strip()


def _row_key(s: Selection) -> tuple:
    return (round(s.begin_s, 4), round(s.end_s, 4), s.channel)


def _find_tables(inputs: list[Path]) -> list[tuple[Path, str]]:
    """(table, its path under the inputs' common folder) of each ``*.txt`` given or found in a
    folder given (detect's combined table passed over: its rows are in the per-file ones)."""
    found = []
    for p in inputs:
        if p.is_dir():
            found += [f for f in sorted(p.rglob("*.txt")) if f.is_file() and not _combined(f)]
        elif p.is_file():
            found.append(p)
        else:
            raise UpcallError(f"{p}: no such file or folder")
    roots = [os.path.abspath(p if p.is_dir() else p.parent) for p in inputs]
    base = os.path.commonpath(roots) if roots else os.getcwd()
    return [(f, os.path.relpath(os.path.abspath(f), base)) for f in found]


def _combined(path: Path) -> bool:
    return path.name == pairing.COMBINED and (path.parent / "detect.json").is_file()


def _recording_rel(table_rel: str) -> str | None:
    """``site1/rec.wav.detections.txt`` -> ``site1/rec.wav`` (a Raven ``rec.Table.1`` name:
    ``site1/rec``); None for a name no recording's table has (the pairing rule's names)."""
    folder, name = os.path.split(table_rel)
    found = pairing.recording_name(name)
    return None if found is None else "/".join([*Path(folder).parts, found])


class Store:
    """The detections under review and their verdicts, kept in step with ``out``."""

    def __init__(self, inputs: list[Path], out: Path, *, audio_root: Path | None = None) -> None:
        self.out = Path(out)
        self.audio_root = audio_root
        self.recordings: list[Recording] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        tables = _find_tables(inputs)
        known = self._known_recordings(inputs)
        for table, rel in tables:
            self._add(table, rel, known)
        for line in self.problems:
            log.warning("%s", line)

    def _known_recordings(self, inputs: list[Path]) -> dict[pairing.Key, tuple[str, Path | None]]:
        """key -> (rel, audio file or None) from the inputs' recordings.csv, else --audio."""
        known: dict[pairing.Key, tuple[str, Path | None]] = {}
        for folder in (p for p in inputs if p.is_dir()):
            try:
                rows = read_effort(folder) or []
            except UpcallError as e:
                self.problems.append(str(e))
                rows = []
            for r in rows:
                known[pairing.key(r.rel)] = (r.rel, self._audio(r.rel, r.path))
        if not known and self.audio_root is not None:
            try:
                found = stream.find_recordings([self.audio_root])
            except UpcallError as e:
                self.problems.append(str(e))
                found = []
            for _, rel in found:
                known[pairing.key(rel)] = (rel.as_posix(), self._audio(rel.as_posix(), None))
        return known

    def _audio(self, rel: str, path: str | None) -> Path | None:
        root = self.audio_root
        if root is None and path is not None:
            root = paths.root_of(path, rel)
            if root is None:
                self.problems.append(f"{path}: does not end in its rel path {rel!r}; give --audio")
                return None
        if root is None:
            return None
        try:
            return paths.inside(root, rel)
        except paths.Outside as e:
            self.problems.append(str(e))
            return None

    def _add(self, table: Path, rel: str, known: dict) -> None:
        rec_rel = _recording_rel(rel)
        if rec_rel is None:
            return  # not a recording's table (a list, notes): passed over
        try:
            selections = raven.read(table).selections
        except UpcallError as e:  # named as a recording's table, so not one is news too
            self.problems.append(str(e))
            return
        found = pairing.resolve(pairing.key(rec_rel), known, bare=True)
        rec = Recording(rec_rel, table, selections)
        if len(found) == 1:
            rec.rel, rec.audio = known[found[0]]
        if rec.audio is None:
            rec.problem = f"{table}: no audio for {rec.rel} (no recordings.csv row or --audio)"
        elif not rec.audio.is_file():
            rec.problem = f"{rec.audio}: missing audio for the detections of {table}"
            rec.audio = None
        if rec.problem:
            self.problems.append(rec.problem)
        rec.verdicts, rec.notes = [""] * len(selections), [""] * len(selections)
        self.recordings.append(rec)
        try:
            self.verified_table(rec)
        except paths.Outside as e:
            rec.writable, rec.problem = False, f"{e}: its verdicts cannot be saved"
            self.problems.append(rec.problem)
            return
        try:
            self._merge(rec)
        except UpcallError as e:
            rec.writable, rec.problem = False, f"{e} (not continued; its verdicts are kept)"
            self.problems.append(rec.problem)

    def verified_table(self, rec: Recording) -> Path:
        """VERIFIED/<rel>.selections.txt: the pairing rule's name for ``rec``'s table (a rel
        leading out of VERIFIED: :class:`upcall.review.paths.Outside`)."""
        return paths.inside(self.out, f"{rec.rel}.selections.txt", what="VERIFIED")

    def _merge(self, rec: Recording) -> None:
        """Take the verdicts on disk (a row matched by its times and channel)."""
        path = self.verified_table(rec)
        if not path.is_file():
            return
        on_disk = {}
        for s in raven.read(path).selections:
            extra = dict(s.extra)
            on_disk[_row_key(s)] = (extra.get(VERIFIED, "").lower(), extra.get(NOTE, ""))
        for i, s in enumerate(rec.selections):
            verdict, note = on_disk.get(_row_key(s), ("", ""))
            rec.verdicts[i] = verdict if verdict in VERDICTS else ""
            rec.notes[i] = note

    def save(self, rec: Recording, row: int, verdict: str, note: str, seen: str | None) -> tuple:
        """Record ``verdict`` and ``note`` for row ``row``; returns (new revision, the row's
        earlier (verdict, note) when it changed since the page loaded it (``seen``), else None).
        """
        if verdict not in (*VERDICTS, ""):
            raise UpcallError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        if not rec.writable:
            raise UpcallError(rec.problem or f"{self.verified_table(rec)}: cannot be written")
        note = clean_note(note)
        with self._lock, folder_lock(self.out / LOCK):
            self._merge(rec)  # another server's or tab's rows stay as written
            before = (rec.verdicts[row], rec.notes[row])
            changed = seen is not None and revision(*before) != seen
            rec.verdicts[row], rec.notes[row] = verdict, note
            self._write(rec)
        log.info("%s row %d: %s", rec.rel, row + 1, verdict or "(cleared)")
        return revision(verdict, note), (before if changed else None)

    def _write(self, rec: Recording) -> None:
        rows = []
        for s, verdict, note in zip(rec.selections, rec.verdicts, rec.notes, strict=True):
            extra = tuple((k, v) for k, v in s.extra if k not in (VERIFIED, NOTE))
            rows.append(replace(s, extra=(*extra, (VERIFIED, verdict), (NOTE, note))))
        path = self.verified_table(rec)
        path.parent.mkdir(parents=True, exist_ok=True)
        raven.write_table(path, rows, scores=any(s.score is not None for s in rec.selections))


@dataclass(frozen=True)
class Item:
    """One detection under review: row ``row`` of recording ``rec`` (indices into the store)."""

    rec: int
    row: int


def listed(store: Store, *, threshold: float) -> list[Item]:
    """Every detection scoring at least ``threshold`` (rows without a score: all), each once,
    by recording then time."""
    items = []
    for r, rec in enumerate(store.recordings):
        for i, s in enumerate(rec.selections):
            if s.score is None or s.score >= threshold:
                items.append(Item(r, i))
    return items


def ordered(store: Store, items: list[Item], order: str, seed: int) -> list[Item]:
    """``items`` by ``order``: "score" (highest first), "time" (clock time where known, else
    recording and time in it) or "random" (seeded)."""
    import numpy as np

    def sel(item: Item) -> Selection:
        return store.recordings[item.rec].selections[item.row]

    if order == "score":
        return sorted(items, key=lambda it: -(sel(it).score or 0.0))
    if order == "time":
        return sorted(items, key=lambda it: (sel(it).clock is None, sel(it).clock or 0,
                                             store.recordings[it.rec].rel, sel(it).begin_s))  # fmt: skip
    if order == "random":
        return [items[i] for i in np.random.default_rng(seed).permutation(len(items))]
    raise ValueError(f"order must be score, time or random, got {order!r}")
