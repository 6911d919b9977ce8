"""What a spectrogram root remembers besides spectrograms.json: which clip each PNG was made
from, and which lists depend on its PNGs.

``ROOT/.upcall-clips``: one line per PNG made, ``REL_PNG \\t SIZE \\t MTIME_NS \\t CTIME_NS \\t
CRC32`` of the clip as it was read. Each worker appends a line (one ``write`` with O_APPEND, so
lines of several workers never mix) right after writing the PNG, so an interrupted run keeps
what it made (a torn line is ignored); the last line of a PNG wins; rewritten whole at the end
of a run. A PNG is up to date when its clip has the recorded size and modification time and
either the recorded inode change time or, when that moved (``cp -p``, ``touch -r``, a copied
folder), the recorded CRC-32 of its bytes. The kernel sets the change time on every write and
no tool can set it back, so a changed clip is always caught; the content is read only for clips
whose change time moved.

``ROOT/.upcall-lists``: one LISTS folder per line, added by ``upcall lists`` after it writes
LISTS/lists.json. ``upcall spectrograms`` refuses to remake PNGs that such lists still use.

``DATA/.upcall-spectrogram-roots``: one ROOT per line, added by ``upcall spectrograms DATA --out
ROOT``, so that ``upcall lists DATA`` uses (or asks about) the PNGs the user made elsewhere
instead of quietly making or taking others beside the clips.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from upcall.fsutil import atomic_write_text

CLIPS_FILE = ".upcall-clips"
LISTS_FILE = ".upcall-lists"
LOCK_FILE = ".upcall-spectrograms.lock"
ROOTS_FILE = ".upcall-spectrogram-roots"  # in DATA: the ROOTs `upcall spectrograms --out` wrote


@dataclass(frozen=True)
class ClipStamp:
    size: int
    mtime_ns: int
    ctime_ns: int
    crc: int

    def line(self, rel: str) -> str:
        return f"{rel}\t{self.size}\t{self.mtime_ns}\t{self.ctime_ns}\t{self.crc}\n"


def stamp(clip: Path) -> ClipStamp:
    """The clip's stamp; stat first, so a clip changed while it is read gets a newer mtime
    than the one recorded and is remade next time."""
    st = clip.stat()
    return ClipStamp(st.st_size, st.st_mtime_ns, st.st_ctime_ns, zlib.crc32(clip.read_bytes()))


def append(root: Path, lines: list[str]) -> None:
    """Worker: record the stamps of the PNGs it just wrote (``ClipStamp.line``)."""
    fd = os.open(root / CLIPS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        for line in lines:
            os.write(fd, line.encode())
    finally:
        os.close(fd)


class ClipIndex:
    """ROOT/.upcall-clips, read once; workers append (:func:`append`), :meth:`save` rewrites."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / CLIPS_FILE
        self.stamps: dict[str, ClipStamp] = {}
        self.updated: dict[str, ClipStamp] = {}  # kept PNGs whose clip's change time moved
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines(keepends=True):
            parts = line.rstrip("\n").split("\t")
            if not line.endswith("\n") or len(parts) != 5:
                continue  # torn by a kill, or not ours
            with contextlib.suppress(ValueError):
                self.stamps[parts[0]] = ClipStamp(*map(int, parts[1:]))

    def fresh(self, rel: str, clip: Path, png: Path) -> bool:
        """Whether ``png`` was made from ``clip`` as it is now (see the module docstring)."""
        old = self.stamps.get(rel)
        try:
            st = clip.stat()
            if old is None or not png.exists():
                return False
        except OSError:
            return False  # the conversion reports an unreadable clip
        if (st.st_size, st.st_mtime_ns) != (old.size, old.mtime_ns):
            return False
        if st.st_ctime_ns == old.ctime_ns:
            return True
        try:
            new = stamp(clip)
        except OSError:
            return False
        if new.crc != old.crc or (new.size, new.mtime_ns) != (old.size, old.mtime_ns):
            return False
        self.updated[rel] = new  # same bytes: remember the new change time
        return True

    def save(self, keep: set[str], *, made: bool) -> None:
        """Rewrite the file with the PNGs in ``keep``, when anything changed (``made``: workers
        appended stamps since it was read; :meth:`fresh` may have updated change times)."""
        if not (made or self.updated):
            return
        # Disjoint: workers stamped the PNGs they made, fresh() the ones it kept.
        stamps = {**ClipIndex(self.root).stamps, **self.updated}
        atomic_write_text(self.path, "".join(s.line(k) for k, s in stamps.items() if k in keep))
        self.updated = {}


def _read_paths(file: Path, unreadable: tuple[type[Exception], ...]) -> list[Path]:
    """The folders listed in one of our registry files, one a line, first mention kept;
    none when reading it raises one of ``unreadable``."""
    try:
        text = file.read_text(encoding="utf-8")
    except unreadable:
        return []
    return [Path(line) for line in dict.fromkeys(text.splitlines()) if line.strip()]


def registered_lists(root: Path) -> list[Path]:
    return _read_paths(root / LISTS_FILE, (FileNotFoundError, UnicodeDecodeError))


def register_lists(root: Path, lists_dir: Path) -> None:
    """Record that ``lists_dir`` uses ROOT's PNGs (dead entries are dropped on the way)."""
    kept = [p for p in registered_lists(root) if (p / "lists.json").is_file() and p != lists_dir]
    atomic_write_text(root / LISTS_FILE, "".join(f"{p}\n" for p in [*kept, lists_dir]))


def forget_everything(root: Path) -> None:
    """Before the PNGs are removed for new settings: their clip stamps mean nothing now."""
    (root / CLIPS_FILE).unlink(missing_ok=True)


def clips_digest(root: Path, rels: Sequence[str]) -> str | None:
    """SHA-256 of the size and CRC-32 of the clip behind each PNG ``rels`` (relative to ROOT,
    in order), as ROOT's stamps record them; None when one has no stamp. Right after
    ``upcall.data.render.ensure`` the stamps are those of the clips as they are now, so this
    is a content digest of the clips, read from the stamps instead of the audio."""
    stamps = ClipIndex(root).stamps
    parts = []
    for rel in rels:
        s = stamps.get(rel)
        if s is None:
            return None
        parts.append(f"{rel}\t{s.size}\t{s.crc}\n")
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def spectrogram_roots(data_dir: Path) -> list[Path]:
    """The ROOTs recorded in DATA by ``upcall spectrograms DATA --out ROOT`` (oldest first)."""
    return _read_paths(data_dir / ROOTS_FILE, (OSError, UnicodeDecodeError))


def register_root(data_dir: Path, root: Path) -> bool:
    """Record ROOT in DATA (last = newest); False when DATA cannot be written (read-only data:
    the caller tells the user to pass ``--spectrogram-root``)."""
    kept = [p for p in spectrogram_roots(data_dir) if p != root and p.is_dir()]
    try:
        atomic_write_text(data_dir / ROOTS_FILE, "".join(f"{p}\n" for p in [*kept, root]))
    except OSError:
        return False
    return True
