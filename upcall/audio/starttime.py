"""When a recording started: the absolute time of its first sample, and where that came from.

:func:`recording_start` asks, in this order, and the first answer wins:

1. a ``--start-times`` CSV (:func:`read_start_times`): columns ``file,start[,site]``, ``start`` in
   ISO 8601 with its UTC offset;
2. the file's own metadata, WAV / RF64 only (chunk headers are read and every other chunk is
   skipped with a seek, so a 24-hour file costs a few small reads): a GUANO ``guan`` chunk's
   ``Timestamp``; a Broadcast WAV ``bext`` chunk's OriginationDate and OriginationTime (to the
   sample where TimeReference agrees with them); AudioMoth's ``LIST``/``INFO``/``ICMT`` comment
   "Recorded at HH:MM:SS DD/MM/YYYY (UTC+H[:MM])". FLAC and AIFF metadata is not read: for them
   the CSV and the name decide;
3. the file name, in the recorder patterns of :data:`PATTERNS_HELP`;
4. else the start is unknown.

No time zone is ever guessed: a time written without one (a BWF chunk and a file name always, a
GUANO timestamp or CSV cell without an offset) is taken as UTC, and ``Start.source`` says so
where the source could have said otherwise.
"""

from __future__ import annotations

import csv
import io
import os
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from upcall.errors import UpcallError

CSV_SOURCE = "start-times CSV"
GUANO = "GUANO"
BEXT = "BWF bext"
AUDIOMOTH = "AudioMoth comment"
UNKNOWN = "unknown"
NO_ZONE = " (no zone: UTC assumed)"  # appended to a source whose time carried no offset

PATTERNS_HELP = (
    "A recording's start time comes from, first found: --start-times CSV (columns file,start"
    "[,site]; start in ISO 8601 with offset, e.g. 2021-02-01T10:30:00+01:00); the WAV file's "
    "GUANO Timestamp, BWF bext OriginationDate/Time or AudioMoth comment; its name: "
    "NAME_YYYYMMDD_HHMMSS (AudioMoth, Song Meter and many others; also YYYYMMDD_HHMMSS.wav, "
    "YYYYMMDDTHHMMSS), SERIAL.YYMMDDHHMMSS (SoundTrap, e.g. 5763.210304123000.wav) or "
    "YYYY-MM-DD_HH-MM-SS. Times without a zone (names, BWF) are taken as UTC."
)

_EARLIEST, _LATEST = 1970, 2199  # years a time stamp may name: a random digit run rarely fits


@dataclass(frozen=True)
class Start:
    """A recording's absolute start (tz-aware) or None, and where it came from."""

    when: datetime | None
    source: str  # "GUANO", "file name (SoundTrap)", "unknown", ... (+ NO_ZONE where UTC assumed)


@dataclass(frozen=True)
class _Row:
    parts: tuple[str, ...]  # the file cell's path components, case-folded
    when: datetime
    zoned: bool  # the cell gave an offset
    site: str | None
    line: int


def _parts(text: str) -> tuple[str, ...]:
    return tuple(p.casefold() for p in re.split(r"[/\\]", text) if p not in ("", "."))


def _ends_with(whole: tuple[str, ...], tail: tuple[str, ...]) -> bool:
    return len(tail) <= len(whole) and whole[len(whole) - len(tail) :] == tail


@dataclass(frozen=True)
class StartTimes:
    """The rows of a ``--start-times`` CSV, looked up by recording."""

    path: Path
    rows: tuple[_Row, ...]

    def _find(self, path: Path, rel: Path | None) -> _Row | None:
        """The row naming this recording: its path under the inputs (``rel``) exactly, else a row
        whose path ends its path (``site1/rec.wav``, ``rec.wav``), else a row whose path ends
        with ``rel``. Two rows in the first tier that answers is an error."""
        r = _parts((rel or Path(path.name)).as_posix())
        a = _parts(os.path.abspath(path))
        tiers: tuple[list[_Row], list[_Row], list[_Row]] = ([], [], [])
        for row in self.rows:
            if row.parts == r:
                tiers[0].append(row)
            elif _ends_with(a, row.parts) or _ends_with(r, row.parts):
                tiers[1].append(row)
            elif _ends_with(row.parts, r):
                tiers[2].append(row)
        for tier in tiers:
            if len(tier) > 1:
                lines = " and ".join(str(row.line) for row in tier[:2])
                raise UpcallError(
                    f"{self.path}: lines {lines} could both be {path}; write its path under "
                    "the recordings folder in the file column"
                )
            if tier:
                return tier[0]
        return None

    def note(self) -> str | None:
        """A line to say once when some rows gave no UTC offset (taken as UTC), else None."""
        bare = [str(row.line) for row in self.rows if not row.zoned]
        if not bare:
            return None
        lines = ", ".join(bare[:5]) + (", ..." if len(bare) > 5 else "")
        n = len(bare)
        return f"{self.path}: {n} start time(s) without a UTC offset, taken as UTC (line {lines})"

    def lookup(self, path: Path, rel: Path | None = None) -> tuple[datetime, str | None] | None:
        """(start, site or None) of the recording at ``path`` (``rel``: its path under the
        inputs' common folder), or None when no row names it."""
        row = self._find(path, rel)
        return None if row is None else (row.when, row.site)


def _parse_iso(text: str) -> tuple[datetime, bool] | None:
    """(tz-aware time, whether the text gave its offset) of an ISO 8601 date and time, or None;
    a time without an offset is taken as UTC."""
    text = text.strip(" \t\r\n\0")
    if not re.search(r"\d[T ]\d", text):  # a date alone is not a start time
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC), False
    return when, True


def read_start_times(path: Path) -> StartTimes:
    """The ``--start-times`` CSV at ``path``: a header row naming ``file`` and ``start`` (and
    optionally ``site``; other columns are ignored), then one row per recording. ``file`` is the
    recording's name or its path under the recordings folder; ``start`` ISO 8601, with its UTC
    offset (without one it is taken as UTC). A bad row is a one-line error ``file:line: ...``."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise UpcallError(f"{path}: cannot read the start times ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise UpcallError(f"{path}: not a UTF-8 text file (of file,start[,site] rows)") from None
    first = text.partition("\n")[0]
    delimiter = next((d for d in ",\t;" if d in first), ",")  # Excel's locales write ; or tab
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [c.strip().casefold() for c in next(reader, [])]
    if "file" not in header or "start" not in header:
        raise UpcallError(
            f"{path}:1: the header must name the columns file,start[,site]; it has "
            f"{','.join(header) or 'nothing'}"
        )
    col = {name: header.index(name) for name in ("file", "start", "site") if name in header}
    rows: list[_Row] = []
    seen: dict[tuple[str, ...], int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) <= max(col["file"], col["start"]):
            raise UpcallError(f"{path}:{line}: {len(cells)} cells; the header has {len(header)}")
        name, start = cells[col["file"]].strip(), cells[col["start"]].strip()
        parts = _parts(name)
        if not parts:
            raise UpcallError(f"{path}:{line}: no file named")
        parsed = _parse_iso(start)
        if parsed is None:
            raise UpcallError(
                f"{path}:{line}: start {start!r} is not an ISO 8601 date and time "
                "(e.g. 2021-02-01T10:30:00+01:00)"
            )
        if parts in seen:
            raise UpcallError(f"{path}:{line}: {name} is listed already on line {seen[parts]}")
        seen[parts] = line
        site = cells[col["site"]].strip() if "site" in col and col["site"] < len(cells) else ""
        rows.append(_Row(parts, parsed[0], parsed[1], site or None, line))
    if not rows:
        raise UpcallError(f"{path}: no start times in it (a header file,start[,site], then rows)")
    return StartTimes(Path(path), tuple(rows))


# ---- WAV metadata ------------------------------------------------------------------------

_RIFF = (b"RIFF", b"RF64", b"BW64")  # RF64 (EBU 3306) and BW64 (ITU-R BS.2088): 64-bit sizes
_WANTED = (b"guan", b"bext", b"LIST", b"fmt ")
_MAX_READ = 1 << 20  # bytes of one metadata chunk read at most (a GUANO block is a few kB)
_MAX_CHUNKS = 10000  # chunk headers looked at, so a damaged file cannot keep us walking
_UNSET = 0xFFFFFFFF  # a 32-bit size that RF64 gives in ds64 (or a writer never filled in)


def _wav_chunks(path: Path) -> dict[bytes, bytes]:
    """The data of the first guan, bext, LIST-INFO and fmt chunks of a RIFF/RF64 WAVE file
    ({} for any other file, or what was found before a damaged or cut-off header)."""
    found: dict[bytes, bytes] = {}
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in _RIFF or head[8:] != b"WAVE":
            return found
        end = os.fstat(f.fileno()).st_size
        big: dict[bytes, int] = {}  # RF64: the real sizes of chunks whose 32-bit size is unset
        pos = 12
        for _ in range(_MAX_CHUNKS):
            f.seek(pos)
            header = f.read(8)
            if len(header) < 8:
                break
            cid, size = struct.unpack("<4sI", header)
            if size == _UNSET:
                size = big.get(cid, end - pos - 8)  # unset and unknown: the rest of the file
            if cid == b"ds64":
                _ds64(f.read(min(size, _MAX_READ)), big)
            elif cid in _WANTED and cid not in found:
                data = f.read(min(size, _MAX_READ))
                if cid != b"LIST" or data[:4] == b"INFO":
                    found[cid] = data
            pos += 8 + size + (size & 1)  # chunks start on even bytes
        return found


def _ds64(data: bytes, big: dict[bytes, int]) -> None:
    """RF64's ds64 chunk: riff size, data size, sample count (uint64), then a table of sizes."""
    if len(data) < 28:
        return
    big[b"data"] = struct.unpack_from("<Q", data, 8)[0]
    (count,) = struct.unpack_from("<I", data, 24)
    for i in range(count):
        at = 28 + 12 * i
        if at + 12 > len(data):
            break
        cid, size = struct.unpack_from("<4sQ", data, at)
        big[cid] = size


def _stamp(*fields: int, tz: timezone = UTC) -> datetime | None:
    """datetime(year, month, day, hour, minute, second) in ``tz``, or None if no such time."""
    if not _EARLIEST <= fields[0] <= _LATEST:
        return None
    try:
        return datetime(*fields, tzinfo=tz)
    except ValueError:
        return None


def _from_guano(data: bytes) -> Start | None:
    for line in data.decode("utf-8", errors="replace").split("\n"):
        key, colon, value = line.partition(":")
        if colon and key.strip() == "Timestamp":
            parsed = _parse_iso(value)
            if parsed is not None:
                return Start(parsed[0], GUANO if parsed[1] else GUANO + NO_ZONE)
    return None


_BEXT_DATE = re.compile(r"(\d{4})\D?(\d{2})\D?(\d{2})")  # the standard's "-"; writers vary
_BEXT_TIME = re.compile(r"(\d{2})\D?(\d{2})\D?(\d{2})")


def _from_bext(data: bytes, rate: int | None) -> Start | None:
    """OriginationDate (10 bytes at 320), OriginationTime (8 at 330); TimeReference (uint64 at
    338, samples since midnight) gives the fraction of a second where it agrees with them."""
    if len(data) < 338:
        return None
    date = _BEXT_DATE.match(data[320:330].decode("ascii", errors="replace"))
    clock = _BEXT_TIME.match(data[330:338].decode("ascii", errors="replace"))
    if not (date and clock):
        return None
    when = _stamp(*(int(g) for g in date.groups() + clock.groups()))
    if when is None:
        return None
    if rate and len(data) >= 346:
        since_midnight = struct.unpack_from("<Q", data, 338)[0] / rate
        midnight = when.replace(hour=0, minute=0, second=0)
        if 0 <= since_midnight - (when - midnight).total_seconds() < 1:
            when = midnight + timedelta(seconds=since_midnight)
    return Start(when, BEXT + NO_ZONE)


_AUDIOMOTH = re.compile(
    r"Recorded at (\d{2}):(\d{2}):(\d{2}) (\d{2})/(\d{2})/(\d{4})"
    r"(?: \(UTC(?:([+-])(\d{1,2})(?::(\d{2}))?)?\))?"
)


def _info(data: bytes, key: bytes) -> str | None:
    """The text of sub-chunk ``key`` of a LIST-INFO chunk's data."""
    pos = 4
    while pos + 8 <= len(data):
        cid, size = struct.unpack_from("<4sI", data, pos)
        if cid == key:
            return data[pos + 8 : pos + 8 + size].decode("latin-1").strip("\0 ")
        pos += 8 + size + (size & 1)
    return None


def _from_audiomoth(data: bytes) -> Start | None:
    """AudioMoth's comment: local time, day first, then its offset ("(UTC)", "(UTC+1)",
    "(UTC-3:30)"); firmware before the offset was written wrote UTC without saying so."""
    m = _AUDIOMOTH.search(_info(data, b"ICMT") or "")
    if m is None:
        return None
    h, mi, s, d, mo, y, sign, off_h, off_m = m.groups()
    offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
    when = _stamp(
        int(y), int(mo), int(d), int(h), int(mi), int(s),
        tz=timezone(-offset if sign == "-" else offset),
    )  # fmt: skip
    if when is None:
        return None
    return Start(when, AUDIOMOTH if "(UTC" in m.group(0) else AUDIOMOTH + NO_ZONE)


def _from_metadata(path: Path) -> Start | None:
    try:
        chunks = _wav_chunks(path)
    except (OSError, struct.error):
        return None  # unreadable: the audio reader says why; the name may still answer
    fmt = chunks.get(b"fmt ", b"")
    rate = struct.unpack_from("<I", fmt, 4)[0] if len(fmt) >= 8 else None
    return (
        _from_guano(chunks.get(b"guan", b""))
        or _from_bext(chunks.get(b"bext", b""), rate)
        or _from_audiomoth(chunks.get(b"LIST", b""))
    )


# ---- file names --------------------------------------------------------------------------

_SOUNDTRAP = re.compile(r"\d+\.(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)")  # the stem
_DASHED = re.compile(r"(?<!\d)(\d{4})-(\d\d)-(\d\d)[_T ](\d\d)-(\d\d)-(\d\d)(?!\d)")
_COMPACT = re.compile(r"(?<!\d)(\d{4})(\d\d)(\d\d)[_T$-]?(\d\d)(\d\d)(\d\d)(?!\d)")


def _from_name(name: str) -> Start | None:
    """The first valid time in the patterns of PATTERNS_HELP (an impossible date is no match)."""
    m = _SOUNDTRAP.fullmatch(Path(name).stem)  # SERIAL.YYMMDDHHMMSS
    if m:
        year, *rest = (int(g) for g in m.groups())
        when = _stamp(2000 + year, *rest)
        if when is not None:
            return Start(when, "file name (SoundTrap)")
    for source, pattern in (
        ("file name (YYYY-MM-DD_HH-MM-SS)", _DASHED),
        ("file name (YYYYMMDD_HHMMSS)", _COMPACT),
    ):
        for m in pattern.finditer(name):
            when = _stamp(*(int(g) for g in m.groups()))
            if when is not None:
                return Start(when, source)
    return None


def recording_start(
    path: Path, *, rel: Path | None = None, table: StartTimes | None = None
) -> Start:
    """Where and when the recording at ``path`` started (module docstring: the order asked).
    ``rel``: its path under the inputs' common folder, to find its ``table`` row (two rows that
    could both be it: UpcallError). A damaged or unreadable file is no error here."""
    path = Path(path)
    row = table._find(path, rel) if table is not None else None
    if row is not None:
        return Start(row.when, CSV_SOURCE if row.zoned else CSV_SOURCE + NO_ZONE)
    return _from_metadata(path) or _from_name(path.name) or Start(None, UNKNOWN)


# ---- writing times -----------------------------------------------------------------------


def to_ms(dt: datetime) -> datetime:
    """``dt`` rounded to the millisecond (so the date and clock written always agree)."""
    if dt.tzinfo is None:
        raise ValueError(f"{dt}: a time without a zone (upcall never guesses one)")
    ms = (dt.microsecond + 500) // 1000
    return dt.replace(microsecond=0) + timedelta(milliseconds=ms)


def iso(dt: datetime) -> str:
    """ISO 8601 to the millisecond with the UTC offset: ``2021-02-01T10:30:00.000+01:00``."""
    return to_ms(dt).isoformat(timespec="milliseconds")
