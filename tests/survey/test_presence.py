"""`upcall presence` through the command on real tables and a real recordings.csv: counts per hour
and day match the detections, hours without audio are no effort (not zero), recordings without a
start are reported, tables alone give an unknown effort, and the diel plot is a real PNG."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from upcall.audio.raven import Selection, write_table
from upcall.cli import main
from upcall.survey.diel import NO_EFFORT, grids
from upcall.survey.effort import RecordingEffort, write_effort
from upcall.survey.presence import Placed, Presence, hours

START_A = datetime(2024, 3, 1, 22, 30, tzinfo=UTC)
START_B = datetime(2024, 3, 2, 5, 0, tzinfo=timezone(timedelta(hours=-5)))  # 10:00 UTC


def det(begin, score=0.9, label="upcall", clock=None):
    return Selection(begin, begin + 1.0, 50.0, 250.0, label, score=score, clock=clock)


@pytest.fixture
def folder(tmp_path):
    """A detect output folder: a.wav (2 h from 22:30 UTC), b.wav (30 min from 10:00 UTC, its
    start given at -05:00), c.wav (start unknown), and a combined table that must not count."""
    out = tmp_path / "det"
    (out / "site1").mkdir(parents=True)
    (out / "detect.json").write_text("{}")
    write_effort(out, [
        RecordingEffort("site1/a.wav", "/r/site1/a.wav", START_A, "GUANO", 7200.0, 0.0),
        RecordingEffort("site1/b.wav", "/r/site1/b.wav", START_B, "start-times CSV", 1800.0, 7200.0),
        RecordingEffort("c.wav", "/r/c.wav", None, "unknown", 600.0, 9000.0),
    ])  # fmt: skip
    # a: 22:30:10, 23:01:40, 23:02:30 (score 0.3), 23:53:20; b: 10:01:40; c: unplaced
    write_table(out / "site1/a.wav.detections.txt",
                [det(10), det(1900), det(1950, 0.3), det(5000)], scores=True)  # fmt: skip
    write_table(out / "site1/b.wav.detections.txt", [det(100)], scores=True)
    write_table(out / "c.wav.detections.txt", [det(5)], scores=True)
    write_table(out / "detections.txt", [det(t) for t in range(0, 3000, 100)], scores=True)
    return out


def presence(capsys, *args):
    code = main(["presence", *map(str, args)])
    done = capsys.readouterr()
    return code, done.out, done.err


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_counts_per_hour_and_day_against_effort(folder, tmp_path, capsys):
    code, out, err = presence(capsys, folder, "--out", tmp_path / "p")
    assert code == 0
    hourly = rows(tmp_path / "p" / "presence.csv")
    assert len(hourly) == 48 and hourly[0]["start_utc"] == "2024-03-01T00:00:00+00:00"
    by = {(r["date"], int(r["hour"])): r for r in hourly}
    want = {  # (date, hour): (effort minutes, detections, presence)
        ("2024-03-01", 22): ("30.00", "1", "1"),
        ("2024-03-01", 23): ("60.00", "2", "1"),  # the 0.3 one is below --threshold 0.5
        ("2024-03-02", 0): ("30.00", "0", "0"),  # recorded, no calls: zero
        ("2024-03-02", 10): ("30.00", "1", "1"),  # b's -05:00 start lands at 10 UTC
    }
    for key, (effort, n, p) in want.items():
        assert (by[key]["effort_min"], by[key]["detections"], by[key]["presence"]) == (effort, n, p)
    others = [r for k, r in by.items() if k not in want]
    # no audio: no effort, not zero; and the combined table's 30 rows are not counted again
    assert all(
        (r["effort_min"], r["detections"], r["presence"]) == ("0.00", "0", "") for r in others
    )
    assert sum(int(r["detections"]) for r in hourly) == 4
    p = Presence.require(tmp_path / "p")
    assert (p.detections, p.hours_with_effort, p.hours_with_presence) == (4, 4, 3)
    assert (p.days_with_effort, p.days_with_presence, p.recorded_hours) == (2, 2, 2.5)
    assert (p.unplaced_detections, p.unplaced_recordings) == (1, ("c.wav",))
    assert "c.wav: 1 detection(s) not placed on the clock" in err
    assert "1 detection(s) scored under --threshold 0.5: not counted" in err  # said, not hidden
    assert "bins: UTC" in out and "hours with presence: 3 of 4 with effort" in out
    code, _, _ = presence(capsys, folder, "--out", tmp_path / "d", "--bin", "day",
                          "--threshold", "0.2")  # fmt: skip
    daily = rows(tmp_path / "d" / "presence.csv")
    assert [(r["date"], r["effort_min"], r["hours_with_effort"], r["detections"],
             r["hours_with_presence"]) for r in daily] == [
        ("2024-03-01", "90.00", "2", "4", "2"), ("2024-03-02", "60.00", "2", "1", "1")]  # fmt: skip


def test_the_diel_plot_marks_hours_without_effort(folder, tmp_path, capsys):
    assert presence(capsys, folder, "--out", tmp_path / "p")[0] == 0
    png = tmp_path / "p" / "diel.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape[0] > 200 and image.shape[1] > 200
    grey = tuple(int(NO_EFFORT[i : i + 2], 16) for i in (1, 3, 5))
    assert (image == grey).all(axis=-1).sum() > 1000  # no-effort hours drawn in grey
    placed = Placed("x", times=[START_A + timedelta(minutes=5)],
                    effort=[(START_A, START_A + timedelta(hours=2))])  # fmt: skip
    counts, recorded = grids(hours(placed))
    assert counts.shape == recorded.shape == (24, 2)
    assert counts[22, 0] == 1 and counts.sum() == 1
    assert recorded[:, 0].tolist() == [False] * 22 + [True, True]
    assert recorded[:, 1].tolist() == [True] + [False] * 23


def test_tables_alone_give_times_from_their_clock_columns(tmp_path, capsys):
    t0 = datetime(2024, 5, 1, 6, 0, 30, tzinfo=UTC)
    write_table(tmp_path / "t" / "a.wav.selections.txt", [
        det(30, None, clock=t0), det(90, None, clock=t0 + timedelta(seconds=60)),
        det(4000, None, "humpback", clock=t0 + timedelta(seconds=3970)),
        det(5000, None),  # no clock time: not placed, reported
    ])  # fmt: skip
    code, out, err = presence(
        capsys, tmp_path / "t", "--out", tmp_path / "p", "--positive", "upcall"
    )
    assert code == 0
    assert "recording effort unknown" in err and "a.wav.selections.txt: 1 detection(s)" in err
    hourly = rows(tmp_path / "p" / "presence.csv")
    six = next(r for r in hourly if r["hour"] == "6")
    assert (six["effort_min"], six["detections"], six["presence"]) == ("", "2", "1")
    assert all(r["presence"] == "" and r["effort_min"] == "" for r in hourly if r["hour"] != "6")
    p = Presence.require(tmp_path / "p")
    assert (p.effort_known, p.hours_with_effort, p.detections, p.labels) == (
        False, None, 2, ("upcall",))  # fmt: skip
    assert "recording effort: unknown" in out


def test_a_missing_table_is_reported_and_the_rest_done(folder, tmp_path, capsys):
    (folder / "site1/b.wav.detections.txt").unlink()
    code, _, err = presence(capsys, folder, "--out", tmp_path / "p")
    assert code == 1 and "Traceback" not in err
    assert "recordings.csv: site1/b.wav: no table b.wav.detections.txt" in err
    assert "1 of 3 recordings failed" in err
    p = Presence.require(tmp_path / "p")  # the rest is done: a's hours only
    assert (p.detections, p.hours_with_effort, p.recorded_hours) == (3, 3, 2.0)
    write_table(tmp_path / "t" / "x.txt", [det(5)], scores=True)
    code, _, err = presence(capsys, tmp_path / "t", "--out", tmp_path / "q")
    assert code == 1 and "nothing to place on the clock" in err
