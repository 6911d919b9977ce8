"""DIR/recordings.csv: written and read back exactly, and its bad rows refused in one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from upcall.errors import UpcallError
from upcall.survey.effort import RecordingEffort, detections_table, read_effort, write_effort

CAPE_COD = timezone(timedelta(hours=-5))


def test_rows_round_trip_with_zones_and_unknown_starts(tmp_path):
    rows = [
        RecordingEffort("site1/a.wav", "/data/site1/a.wav", datetime(2024, 3, 1, 22, 30, tzinfo=UTC),
                        "GUANO", 7200.25, 0.0),
        RecordingEffort("site1/b.flac", "/data/site1/b.flac",
                        datetime(2024, 3, 2, 5, 0, 0, 500000, tzinfo=CAPE_COD),
                        "start-times CSV", 1800.0, 7200.25),
        RecordingEffort("c, d.wav", "/data/c, d.wav", None, "unknown", 600.0, 9000.25),
    ]  # fmt: skip
    path = write_effort(tmp_path, rows)
    assert path == tmp_path / "recordings.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == "rel,path,start_time,start_source,duration_s,sequence_offset_s"
    assert lines[2].split(",")[2] == "2024-03-02T05:00:00.500-05:00"
    assert lines[3].startswith('"c, d.wav",') and ",,unknown," in lines[3]
    back = read_effort(tmp_path)
    assert back == rows
    assert back[1].start_time.utcoffset() == timedelta(hours=-5)
    assert back[0].end_time == datetime(2024, 3, 2, 0, 30, 0, 250000, tzinfo=UTC)
    assert back[2].end_time is None
    assert read_effort(tmp_path / "nothing") is None
    assert detections_table(tmp_path, "site1/a.wav") == tmp_path / "site1/a.wav.detections.txt"


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("a.wav,/a.wav,2024-03-01 10:00:00,x,10,0", ["start_time", "no offset"]),
        ("a.wav,/a.wav,yesterday,x,10,0", ["start_time", "not ISO 8601"]),
        ("a.wav,/a.wav,,unknown,-1,0", ["duration_s", "'-1'"]),
        ("a.wav,/a.wav,,unknown,ten,0", ["duration_s", "'ten'"]),
        ("a.wav,/a.wav,,unknown", ["4 cells, expected 6"]),
    ],
)
def test_bad_rows_are_one_line_naming_file_and_line(tmp_path, row, words):
    good = "b.wav,/b.wav,2024-03-01T10:00:00+00:00,GUANO,10,0"
    path = tmp_path / "recordings.csv"
    path.write_text(
        f"rel,path,start_time,start_source,duration_s,sequence_offset_s\n{good}\n{row}\n"
    )
    with pytest.raises(UpcallError) as e:
        read_effort(tmp_path)
    assert str(e.value).startswith(f"{path}:3: ") and all(w in str(e.value) for w in words)
    path.write_text("file,start\n")
    with pytest.raises(UpcallError, match=r"recordings.csv:1: the header"):
        read_effort(path)


def test_a_start_without_zone_is_not_written(tmp_path):
    with pytest.raises(ValueError, match="no time zone"):
        write_effort(tmp_path, [RecordingEffort("a", "a", datetime(2024, 1, 1), "x", 1.0)])
    assert not (tmp_path / "recordings.csv").exists()


def test_an_undecodable_recordings_csv_is_one_line(tmp_path):
    """Not UTF-8 (a copy through a legacy spreadsheet) or a folder in its place: one line naming
    the file, never a traceback; no file at all: no effort known."""
    assert read_effort(tmp_path) is None
    (tmp_path / "recordings.csv").write_bytes(b"rel,path\n\xff\xfe,x\n")
    with pytest.raises(UpcallError, match=r"recordings.csv: not UTF-8 text \(byte 9\)"):
        read_effort(tmp_path)
    (tmp_path / "recordings.csv").unlink()
    (tmp_path / "recordings.csv").mkdir()
    with pytest.raises(UpcallError, match=r"recordings.csv: cannot read: Is a directory"):
        read_effort(tmp_path)
