"""Recording start times: real WAV / RF64 / FLAC files with GUANO, BWF bext and AudioMoth chunks
added, recorder file names, the --start-times CSV, the order of sources, Raven's date and clock."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import soundfile as sf

from upcall.audio.starttime import (
    NO_ZONE,
    PATTERNS_HELP,
    Start,
    iso,
    read_start_times,
    recording_start,
)
from upcall.errors import UpcallError

RATE = 8000
PLUS1 = timezone(timedelta(hours=1))
COMPACT = "file name (YYYYMMDD_HHMMSS)"


def _write(path, fmt="WAV"):
    """A real 0.5-s file written by libsndfile; returns its samples."""
    data = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE // 2) / RATE) * 32767).astype(np.int16)
    sf.write(path, data, RATE, format=fmt, subtype="PCM_16")
    return data


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)


def _data_offset(raw: bytes) -> int:
    pos = 12
    while raw[pos : pos + 4] != b"data":
        pos += 8 + struct.unpack_from("<I", raw, pos + 4)[0]
    return pos


def _add(path, *chunks: bytes, before_data: bool = True):
    """Insert chunks before the data chunk (or append them after it) and fix the RIFF size."""
    raw = path.read_bytes()
    at = _data_offset(raw) if before_data else len(raw)
    raw = raw[:at] + b"".join(chunks) + raw[at:]
    path.write_bytes(raw[:4] + struct.pack("<I", len(raw) - 8) + raw[8:])


def _guano(timestamp: str) -> bytes:
    text = f"GUANO|Version: 1.0\nMake: Test\nTimestamp:  {timestamp}\nTE: 1\n".encode()
    return _chunk(b"guan", text)


def _bext(date: str, time: str, reference: int = 0) -> bytes:
    """A version-1 bext chunk (602 bytes, no coding history)."""
    head = b"upcall test".ljust(256, b"\0") + b"rec".ljust(32, b"\0") + b"".ljust(32, b"\0")
    rest = struct.pack("<QH", reference, 1) + bytes(64 + 10 + 180)
    return _chunk(b"bext", head + date.encode() + time.encode() + rest)


def _icmt(comment: str) -> bytes:
    return _chunk(b"LIST", b"INFO" + _chunk(b"ICMT", comment.encode() + b"\0"))


def _unchanged(path, data):
    read, rate = sf.read(path, dtype="int16")
    assert rate == RATE and np.array_equal(read, data)


@pytest.mark.parametrize(
    "name, when, source",
    [
        ("AM01_20210201_103000.WAV", (2021, 2, 1, 10, 30, 0), COMPACT),
        ("20211231_235959.WAV", (2021, 12, 31, 23, 59, 59), COMPACT),
        ("SM4_20210201T103000_x.wav", (2021, 2, 1, 10, 30, 0), COMPACT),
        ("5763.210304123000.wav", (2021, 3, 4, 12, 30, 0), "file name (SoundTrap)"),
        ("hp_2021-02-01_10-30-05.flac", (2021, 2, 1, 10, 30, 5), "file name (YYYY-MM-DD_HH-MM-SS)"),
        # the first valid time in the name: 30 February is no date
        ("20210230_103000_20210228_113000.wav", (2021, 2, 28, 11, 30, 0), COMPACT),
    ],
)  # fmt: skip
def test_file_name_patterns(tmp_path, name, when, source):
    path = tmp_path / name
    _write(path, "FLAC" if name.endswith(".flac") else "WAV")
    assert recording_start(path) == Start(datetime(*when, tzinfo=UTC), source)


@pytest.mark.parametrize(
    "name",
    ["rec_20211301_103000.wav", "rec_20210101_246000.wav", "5763.211304123000.wav",
     "120210201_103000.wav", "rec_19000101_000000.wav", "2021-02-31_10-30-00.wav", "rec.wav"],
)  # fmt: skip
def test_impossible_or_absent_times_are_unknown(tmp_path, name):
    path = tmp_path / name
    _write(path)
    assert recording_start(path) == Start(None, "unknown")


def test_patterns_help_names_each_pattern():
    for pattern in ("YYYYMMDD_HHMMSS", "SERIAL.YYMMDDHHMMSS", "YYYY-MM-DD_HH-MM-SS", "UTC"):
        assert pattern in PATTERNS_HELP
    assert "%" not in PATTERNS_HELP  # argparse formats help text with %


def test_guano_after_the_data(tmp_path):
    path = tmp_path / "bat_20000101_000000.wav"  # the metadata wins over the name
    data = _write(path)
    _add(path, _guano("2021-02-01T10:30:00.250-04:00"), before_data=False)
    _unchanged(path, data)
    start = recording_start(path)
    assert start == Start(datetime(2021, 2, 1, 14, 30, 0, 250000, tzinfo=UTC), "GUANO")
    assert start.when.utcoffset() == timedelta(hours=-4)  # the recorder's own offset is kept


def test_guano_without_zone_is_utc_and_says_so(tmp_path):
    path = tmp_path / "bat.wav"
    data = _write(path)
    _add(path, _guano("2021-02-01T10:30:00"))
    _unchanged(path, data)
    assert recording_start(path) == Start(
        datetime(2021, 2, 1, 10, 30, tzinfo=UTC), "GUANO" + NO_ZONE
    )


def test_bext_date_time_and_time_reference(tmp_path):
    path = tmp_path / "bwf.wav"
    data = _write(path)
    since_midnight = (10 * 3600 + 30 * 60) * RATE + RATE // 4  # 10:30:00.25 in samples
    _add(path, _bext("2021-02-01", "10:30:00", since_midnight))
    _unchanged(path, data)
    start = recording_start(path)
    assert start == Start(datetime(2021, 2, 1, 10, 30, 0, 250000, tzinfo=UTC), "BWF bext" + NO_ZONE)


@pytest.mark.parametrize("date, time", [("2021:02:01", "10-30-00"), ("2021/02/01", "10.30.00")])
def test_bext_other_separators_and_a_time_reference_that_disagrees(tmp_path, date, time):
    path = tmp_path / "bwf.wav"
    _write(path)
    _add(path, _bext(date, time, reference=3600 * RATE))  # 01:00: not this time, not used
    assert recording_start(path).when == datetime(2021, 2, 1, 10, 30, tzinfo=UTC)


def test_empty_bext_date_is_no_answer(tmp_path):
    path = tmp_path / "rec_20210201_103000.wav"
    _write(path)
    _add(path, _bext("\0" * 10, "\0" * 8))
    assert recording_start(path).source == "file name (YYYYMMDD_HHMMSS)"


@pytest.mark.parametrize(
    "zone, offset, source",
    [
        ("(UTC)", timedelta(0), "AudioMoth comment"),
        ("(UTC+1)", timedelta(hours=1), "AudioMoth comment"),
        ("(UTC-3:30)", -timedelta(hours=3, minutes=30), "AudioMoth comment"),
        ("", timedelta(0), "AudioMoth comment" + NO_ZONE),  # early firmware
    ],
)
def test_audiomoth_comment(tmp_path, zone, offset, source):
    path = tmp_path / "20000101_000000.WAV"
    data = _write(path)
    text = f"Recorded at 10:30:00 01/02/2021 {zone} by AudioMoth 24F319045D1A2B3C at medium gain"
    _add(path, _icmt(text.replace("  ", " ")))
    _unchanged(path, data)
    start = recording_start(path)
    assert start == Start(datetime(2021, 2, 1, 10, 30, tzinfo=timezone(offset)), source)
    assert start.when.utcoffset() == offset


def test_audiomoth_comment_written_by_libsndfile(tmp_path):
    path = tmp_path / "moth.wav"
    with sf.SoundFile(path, "w", RATE, 1, "PCM_16", format="WAV") as f:
        f.comment = "Recorded at 23:00:00 31/12/2020 (UTC+1) by AudioMoth 24F319045D1A2B3C"
        f.write(np.zeros(RATE, dtype=np.int16))
    assert recording_start(path) == Start(
        datetime(2020, 12, 31, 22, tzinfo=UTC), "AudioMoth comment"
    )


def test_rf64_metadata_after_the_data(tmp_path):
    path = tmp_path / "long.wav"
    data = _write(path, "RF64")
    raw = path.read_bytes()
    assert raw[:4] == b"RF64" and raw[12:16] == b"ds64"
    at = _data_offset(raw)
    # the 32-bit data size unset, as a writer past 4 GiB leaves it: only ds64 knows it
    raw = (
        raw[: at + 4]
        + struct.pack("<I", 0xFFFFFFFF)
        + raw[at + 8 :]
        + _guano("2021-02-01T10:30:00Z")
    )
    raw = raw[:20] + struct.pack("<Q", len(raw) - 8) + raw[28:]  # ds64's RIFF size
    path.write_bytes(raw)
    _unchanged(path, data)
    assert recording_start(path) == Start(datetime(2021, 2, 1, 10, 30, tzinfo=UTC), "GUANO")


def test_metadata_order_then_name(tmp_path):
    chunks = [
        _guano("2021-02-01T10:00:00+00:00"),
        _bext("2021-02-01", "11:00:00"),
        _icmt("Recorded at 12:00:00 01/02/2021 (UTC) by AudioMoth 24F319045D1A2B3C"),
    ]
    hours = [10, 11, 12, 13]
    for i, hour in enumerate(hours):
        path = tmp_path / f"{i}_20210201_130000.wav"
        _write(path)
        _add(path, *reversed(chunks[i:]))  # reversed: the file's order is not what decides
        assert recording_start(path).when == datetime(2021, 2, 1, hour, tzinfo=UTC), i


def test_damaged_or_unreadable_header_falls_back_to_the_name(tmp_path):
    cut = tmp_path / "rec_20210201_103000.wav"
    _write(cut)
    cut.write_bytes(cut.read_bytes()[:30])
    garbage = tmp_path / "x_20210201_103000.wav"
    garbage.write_bytes(b"RIFF\xff\xff\xff\xffWAVEguan\x10\x00\x00\x00Timest")
    for path in (cut, garbage):
        assert recording_start(path).source == "file name (YYYYMMDD_HHMMSS)"
    assert recording_start(tmp_path / "missing.wav") == Start(None, "unknown")


# ---- the --start-times CSV ---------------------------------------------------------------


def test_csv_lookup_by_rel_path_and_by_name(tmp_path):
    csv = tmp_path / "starts.csv"
    csv.write_bytes(
        "\ufefffile,Start,site,note\r\n"
        "north/rec.wav,2021-02-01T10:30:00+01:00,N1,x\r\n"
        'south/rec.wav,"2021-02-02 10:30:00.5+01:00",S1\r\n'
        "\r\n"
        "5763.210304123000.wav,2021-03-04T12:30:00,,\r\n".encode()
    )
    table = read_start_times(csv)
    north = tmp_path / "data" / "north" / "rec.wav"
    at = datetime(2021, 2, 1, 10, 30, tzinfo=PLUS1)
    assert table.lookup(north, north.relative_to(tmp_path / "data")) == (at, "N1")
    # given the north folder itself, rel is just the name; its own path still tells north
    assert table.lookup(north, north.relative_to(tmp_path / "data" / "north")) == (at, "N1")
    south = tmp_path / "south" / "REC.WAV"
    assert table.lookup(south, south.relative_to(tmp_path)) == (
        at + timedelta(days=1, seconds=0.5),
        "S1",
    )
    trap = tmp_path / "deep" / "5763.210304123000.wav"
    assert table.lookup(trap, trap.relative_to(tmp_path)) == (
        datetime(2021, 3, 4, 12, 30, tzinfo=UTC),
        None,
    )
    assert table.lookup(tmp_path / "other.wav", None) is None
    east = tmp_path / "east" / "rec.wav"
    assert table.lookup(east, east.relative_to(tmp_path)) is None  # no row names east/


def test_csv_ambiguous_name_is_an_error(tmp_path):
    csv = tmp_path / "starts.csv"
    csv.write_text("file,start\na/rec.wav,2021-02-01T10:30:00Z\nb/rec.wav,2021-02-02T10:30:00Z\n")
    table = read_start_times(csv)
    with pytest.raises(UpcallError, match=r"starts.csv: lines 2 and 3 could both be .*rec.wav"):
        table.lookup(tmp_path / "x" / "rec.wav", None)


def test_csv_wins_and_says_when_it_assumed_utc(tmp_path):
    path = tmp_path / "rec_20200101_000000.wav"
    _write(path)
    _add(path, _guano("2020-01-01T05:00:00Z"))
    csv = tmp_path / "t.tsv"
    csv.write_text("file\tstart\nrec_20200101_000000.wav\t2021-02-01T10:30:00\n")  # tab, no zone
    table = read_start_times(csv)
    start = recording_start(path, rel=None, table=table)
    assert start == Start(datetime(2021, 2, 1, 10, 30, tzinfo=UTC), "start-times CSV" + NO_ZONE)
    assert table.note() == f"{csv}: 1 start time(s) without a UTC offset, taken as UTC (line 2)"
    csv.write_text("file,start\nrec_20200101_000000.wav,2021-02-01T10:30:00-05:00\n")
    start = recording_start(path, rel=None, table=read_start_times(csv))
    assert start.source == "start-times CSV" and start.when.utcoffset() == timedelta(hours=-5)
    assert read_start_times(csv).note() is None
    csv.write_text("file,start\nother.wav,2021-02-01T10:30:00Z\n")  # no row: the file decides
    assert recording_start(path, table=read_start_times(csv)).source == "GUANO"


@pytest.mark.parametrize(
    "text, where",
    [
        ("name,start\nrec.wav,2021-02-01T10:30Z\n", r":1: the header must name .* it has name,start"),
        ("file,start\nrec.wav,2021-02-01T10:30Z\nb.wav,01/02/2021 10:30\n", r":3: start '01/02/2021"),
        ("file,start\nrec.wav,2021-02-01\n", r":2: start '2021-02-01' is not an ISO 8601"),
        ("file,start\nrec.wav,2021-02-30T10:30:00Z\n", r":2: start .* is not an ISO 8601"),
        ("file,start\n,2021-02-01T10:30:00Z\n", r":2: no file named"),
        ("file,start\nrec.wav\n", r":2: 1 cells; the header has 2"),
        ("file,start\nr.wav,2021-02-01T10:30Z\n./R.wav,2021-02-01T10:30Z\n", r":3: ./R.wav is listed"),
        ("file,start\n", r": no start times in it"),
        ("", r":1: the header must name"),
    ],
)  # fmt: skip
def test_csv_bad_rows_are_one_line_errors(tmp_path, text, where):
    csv = tmp_path / "starts.csv"
    csv.write_text(text)
    with pytest.raises(UpcallError, match=r"starts.csv" + where) as err:
        read_start_times(csv)
    assert "\n" not in str(err.value)


def test_csv_unreadable(tmp_path):
    with pytest.raises(UpcallError, match=r"nope.csv: cannot read the start times"):
        read_start_times(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00file")
    with pytest.raises(UpcallError, match=r"bin.csv: not a UTF-8 text file"):
        read_start_times(tmp_path / "bin.csv")


# ---- writing times -----------------------------------------------------------------------


def test_iso_rounds_to_the_millisecond_with_the_offset():
    at = datetime(2021, 2, 1, 9, 5, 3, 123456, tzinfo=PLUS1)
    assert iso(at) == "2021-02-01T09:05:03.123+01:00"
    # rounding to the millisecond carries into the next day
    late = datetime(2021, 12, 31, 23, 59, 59, 999600, tzinfo=UTC)
    assert iso(late) == "2022-01-01T00:00:00.000+00:00"
    with pytest.raises(ValueError, match="without a zone"):
        iso(datetime(2021, 2, 1))
