"""detect's outputs an acoustician files: clock times, the combined table as a Raven file
sequence, sequence.txt, detections.csv and recordings.csv, on real recordings with time-stamped
names and a --start-times CSV."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from upcall.audio.raven import read, read_table
from upcall.detect.combined import Entry, describe, offsets, order, pauses
from upcall.detect.made import Made, RecordingStamp
from upcall.detect.run import detect
from upcall.survey.effort import read_effort

T0 = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
NAMES = ("rec_20240301_000000.wav", "rec_20240301_001000.wav")  # 2-min files, 8 min apart


def entry(rel: str, start: datetime | None, seconds: float = 120.0) -> Entry:
    made = Made("x", RecordingStamp(1, 1, "x"), False, start.isoformat() if start else None)
    return Entry(Path("/d") / rel, Path(rel), made, seconds)


def test_the_sequence_is_time_order_then_name_order():
    found = order([entry("c.wav", None), entry("b.wav", T0), entry("a.wav", None),
                   entry("z.wav", T0 - timedelta(hours=1))])  # fmt: skip
    assert [e.rel.name for e in found] == ["z.wav", "b.wav", "a.wav", "c.wav"]
    assert offsets(found) == [0.0, 120.0, 240.0, 360.0]
    assert pauses(found) == [3600.0 - 120.0]  # only between files whose starts are known
    lines = describe(found)
    assert "2 recording(s) in time order; 2 of unknown start" in lines[0]
    assert "1 gap(s)" in lines[1] and "58:00" in lines[1]


@pytest.fixture
def folder(easy_recording, tmp_path):
    site = tmp_path / "in" / "site"
    site.mkdir(parents=True)
    for name in (*NAMES, "unknown.wav"):
        (site / name).write_bytes(easy_recording.read_bytes())
    return tmp_path / "in"


def test_clock_times_and_the_file_sequence(tiny_job, folder, tmp_path, capsys):
    out = tmp_path / "out"
    detect(tiny_job, [folder], out, threshold=0.0).finish()
    log = capsys.readouterr().err
    assert "2 recording(s) in time order; 1 of unknown start after them" in log
    assert "1 gap(s) between recordings" in log and "8:00" in log
    site = folder / "site"
    # per-file tables: times from their own start, clock times where the start is known
    second = read(out / "site" / f"{NAMES[1]}.detections.txt")
    assert {"Begin Date", "Begin Clock Time", "Peak Score Time (s)", "Annotation"} <= set(
        second.columns
    )
    start = T0 + timedelta(minutes=10)
    for s in second.selections:
        assert abs(s.clock - (start + timedelta(seconds=s.begin_s))) < timedelta(milliseconds=1)
    assert "Begin Date" not in read(out / "site" / "unknown.wav.detections.txt").columns
    # the combined table: the files back to back, in time order, the unknown one last
    rows = read_table(out / "detections.txt")
    per_file = [read_table(out / "site" / f"{n}.detections.txt") for n in (*NAMES, "unknown.wav")]
    assert len(rows) == sum(len(t) for t in per_file) and all(per_file)
    assert [r.begin_file for r in rows] == [
        n for n, t in zip((*NAMES, "unknown.wav"), per_file, strict=True) for _ in t
    ]
    for r in rows:
        offset = {NAMES[0]: 0.0, NAMES[1]: 120.0, "unknown.wav": 240.0}[r.begin_file]
        assert r.begin_s == pytest.approx(offset + r.file_offset_s, abs=1e-6)
        assert r.begin_path == str((site / r.begin_file).resolve())
    assert (out / "sequence.txt").read_text().splitlines() == [
        str((site / n).resolve()) for n in (*NAMES, "unknown.wav")
    ]
    effort = read_effort(out)
    assert [(e.rel, e.start_time, e.sequence_offset_s, e.duration_s) for e in effort] == [
        ("site/" + NAMES[0], T0, 0.0, 120.0),
        ("site/" + NAMES[1], start, 120.0, 120.0),
        ("site/unknown.wav", None, 240.0, 120.0),
    ]
    assert effort[0].start_source.startswith("file name")
    with open(out / "detections.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["recording", "rel", "begin_s", "end_s", "low_hz", "high_hz",
                              "score", "peak_s", "begin_time"]  # fmt: skip
    known = [r for r in table if r["rel"] == "site/" + NAMES[1]]
    assert known and all(
        abs(
            datetime.fromisoformat(r["begin_time"]) - start - timedelta(seconds=float(r["begin_s"]))
        )
        < timedelta(milliseconds=2)
        for r in known
    )
    assert all(r["begin_time"] == "" for r in table if r["rel"] == "site/unknown.wav")
    made = Made.read(out / "site" / f"{NAMES[1]}.made.json")
    assert (made.start, made.duration_s) == ("2024-03-01T00:10:00.000+00:00", 120.0)


def test_a_start_times_csv_redoes_only_the_tables_whose_start_changed(tiny_job, folder, tmp_path):
    out = tmp_path / "out"
    detect(tiny_job, [folder], out, threshold=0.0).finish()
    kept = out / "site" / f"{NAMES[0]}.detections.txt"
    redone = out / "site" / "unknown.wav.detections.txt"
    before = kept.stat().st_mtime_ns, redone.stat().st_mtime_ns
    times = tmp_path / "starts.csv"
    times.write_text("file,start\nunknown.wav,2024-03-01T00:20:00+02:00\n")
    detect(tiny_job, [folder], out, threshold=0.0, start_times=times).finish()
    assert kept.stat().st_mtime_ns == before[0]
    assert redone.stat().st_mtime_ns != before[1]
    plus2 = timezone(timedelta(hours=2))
    first = read_table(redone)[0]
    assert first.clock.utcoffset() == timedelta(hours=2)  # kept in the CSV's own offset
    assert first.clock == datetime(2024, 3, 1, 0, 20, tzinfo=plus2) + timedelta(
        seconds=round(first.begin_s, 3)
    )
    # 00:20+02:00 is 22:20 UTC the day before: now the first file of the sequence
    assert Path((out / "sequence.txt").read_text().splitlines()[0]).name == "unknown.wav"
    assert read_effort(out)[0].start_source == "start-times CSV"
