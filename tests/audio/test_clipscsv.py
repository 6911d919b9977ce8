"""DATA/clips.csv: written and read back exactly; every bad row is one line naming file:line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from upcall.audio.clipscsv import HEADER, ClipOrigin, read_clips_csv, write_clips_csv
from upcall.errors import UpcallError

ROWS = [
    ClipOrigin("site1__a.wav_000012345.aiff", 1, "positive", "/data/site1/a.wav", "site1/a.wav",
               0, 12.345, datetime(2024, 3, 1, 12, 0, 12, 345000, tzinfo=UTC), "site1",
               "/tables/site1/a.Table.1.selections.txt", 7, "upcall"),
    ClipOrigin("site1__a.wav_000100000.aiff", 0, "hard-negative", "/data/site1/a.wav",
               "site1/a.wav", 0, 100.0,
               datetime(2024, 3, 1, 8, 1, 40, tzinfo=timezone(timedelta(hours=-4))), "site1",
               "/tables/site1/a.Table.1.selections.txt", 9, "humpback, maybe"),
    ClipOrigin("b.flac_000000000.aiff", 0, "negative", "/data/b.flac", "b.flac", 1, 0.0),
]  # fmt: skip


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "clips.csv"
    write_clips_csv(path, ROWS)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(HEADER)
    assert lines[1].split(",")[6:8] == ["12.345000", "2024-03-01T12:00:12.345+00:00"]
    assert '"humpback, maybe"' in lines[2] and "-04:00" in lines[2]
    assert lines[3] == "b.flac_000000000.aiff,0,negative,/data/b.flac,b.flac,1,0.000000,,,,,"
    assert read_clips_csv(path) == ROWS


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a.aiff,2,positive,r,r,0,1.0,,,,,", "label must be 0 or 1"),
        ("a.aiff,1,maybe,r,r,0,1.0,,,,,", "kind must be one of positive, negative, hard-negative"),
        ("a.aiff,1,positive,r,r,0,soon,,,,,", "start_s is not a number: 'soon'"),
        ("a.aiff,1,positive,r,r,0,nan,,,,,", "start_s is not finite"),
        ("a.aiff,1,positive,r,r,x,1.0,,,,,", "channel is not an integer: 'x'"),
        ("a.aiff,1,positive,r,r,0,1.0,2024-03-01 12:00:00,,,,", "has no UTC offset"),
        ("a.aiff,1,positive,r,r,0,1.0,yesterday,,,,", "is not an ISO 8601 time"),
        ("a.aiff,1,positive,r,r,0,1.0,,,t,x,", "row is not an integer"),
        ("a.aiff,1,positive,r,r,0,1.0", "expected 12 fields, got 7"),
        (",1,positive,r,r,0,1.0,,,,,", "empty clip_name"),
    ],
)
def test_a_bad_row_is_one_line_naming_file_and_line(tmp_path, row, message):
    path = tmp_path / "clips.csv"
    path.write_text(",".join(HEADER) + "\nok.aiff,0,negative,r,r,0,0.5,,,,,\n" + row + "\n")
    with pytest.raises(UpcallError) as e:
        read_clips_csv(path)
    assert str(e.value).startswith(f"{path}:3: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_header_and_duplicates_are_checked(tmp_path):
    path = tmp_path / "clips.csv"
    path.write_text("clip_name,label\na.aiff,1\n")
    with pytest.raises(UpcallError, match=r"clips.csv:1: expected the header"):
        read_clips_csv(path)
    path.write_text(",".join(HEADER) + "\n" + "a.aiff,0,negative,r,r,0,0.5,,,,,\n" * 2)
    with pytest.raises(UpcallError, match=r"clips.csv:3: clip a.aiff is listed twice \(first on"):
        read_clips_csv(path)
    with pytest.raises(UpcallError, match=r"nope.csv: cannot read"):
        read_clips_csv(tmp_path / "nope.csv")
