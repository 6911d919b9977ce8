"""From annotated recordings to a survey, end to end through the real commands (issue 21 §5).

Three short synthetic recordings with time-stamped names (two AudioMoth-style 2 kHz WAVs at one
site, duty-cycled; a SoundTrap-style 8 kHz FLAC at another) and their truth rewritten as Raven
Pro writes it (two views per selection, ``Tags``, CRLF; site1 as one file-sequence table, site2
with a BOM): ``upcall clips``, ``upcall fit --recordings``, ``upcall detect``, ``upcall
presence`` and ``upcall evaluate``. Every table and CSV is read here as plain text, so the checks
do not lean on our own readers.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from tests.recordings import annotated_recordings
from upcall import cli

# Tiny: a 2-block WhaleNet 4 channels wide, a few epochs on a few dozen clips.
RECIPE = {"epochs": 4, "network_params": {"width": 4, "blocks": 2}}
GUARD_S = 2.0  # `clips`' default --guard
CLIP_S, RATE = 2.0, 2000


def rows(path: Path, delimiter: str = "\t") -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def upcall(*args: object) -> int:
    return cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return annotated_recordings(tmp_path_factory.mktemp("survey"), sequence_site="site1")


@pytest.fixture(scope="module")
def by_rel(survey):
    return {a.spec.rel: a for a in survey.recorded}


@pytest.fixture(scope="module")
def data(survey, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clips") / "data"
    rc = upcall("clips", survey.recordings, "--annotations", survey.tables, "--out", out,
                "--positive", "upcall", "--label-column", "Tags", "--seed", 3)  # fmt: skip
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def run(survey, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fit")
    recipe = folder / "recipe.json"
    recipe.write_text(json.dumps(RECIPE))
    out = folder / "run"
    rc = upcall("fit", "--recordings", survey.recordings, "--annotations", survey.tables,
                "--out", out, "--positive", "upcall", "--label-column", "Tags", "--seed", 3,
                "--recipe", recipe, "--threads", 1)  # fmt: skip
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def threshold(run, survey, tmp_path_factory) -> float:
    """A threshold that the top 5 % of windows pass: a network trained for seconds on a few
    dozen clips scores in a narrow band of its own, and the checks need detections."""
    probe = tmp_path_factory.mktemp("probe")
    job = run / "jobs" / "whalenet-lr0.01"
    assert (
        upcall("detect", job, survey.recordings, "--out", probe, "--threshold", 1, "--scores") == 0
    )
    scores = [float(r["score"]) for f in probe.rglob("*.scores.csv") for r in rows(f, ",")]
    assert len(scores) > 1000
    return round(float(np.quantile(scores, 0.95)), 4)


@pytest.fixture(scope="module")
def detections(run, survey, threshold, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("detect") / "det"
    job = run / "jobs" / "whalenet-lr0.01"
    assert upcall("detect", job, survey.recordings, "--out", out, "--threshold", threshold) == 0
    return out


def _inside(call, start_s: float) -> float:
    """The fraction of ``call``'s duration inside the clip starting at ``start_s``."""
    overlap = min(call.end_s, start_s + CLIP_S) - max(call.begin_s, start_s)
    return max(overlap, 0.0) / (call.end_s - call.begin_s)


def _gap(box, start_s: float) -> float:
    """Seconds between ``box`` and the clip starting at ``start_s`` (negative: they overlap)."""
    return max(box.begin_s - (start_s + CLIP_S), start_s - box.end_s)


def _source(recording: Path, start_s: float) -> np.ndarray:
    """The recording's audio under a clip, at 2 kHz, resampled by a polyphase filter of our own
    (scipy's) with a second of margin either side."""
    info = sf.info(recording)
    q = info.samplerate // RATE
    first = round((start_s - 1.0) * info.samplerate)
    x, _ = sf.read(recording, start=max(first, 0), frames=round(4 * info.samplerate))
    x = np.concatenate([np.zeros(max(-first, 0)), x])
    x = resample_poly(x, 1, q) if q > 1 else x
    return x[RATE : RATE + round(CLIP_S * RATE)]


def test_clips_are_cut_where_the_tables_say(survey, by_rel, data):
    clips = rows(data / "clips.csv", ",")
    train = rows(data / "train.csv", ",")
    assert [(r["clip_name"], r["label"]) for r in clips] == [
        (r["clip_name"], r["label"]) for r in train
    ]
    positives = [r for r in clips if r["kind"] == "positive"]
    negatives = [r for r in clips if r["kind"] == "negative"]
    hard = [r for r in clips if r["kind"] == "hard-negative"]
    assert len(positives) + len(negatives) + len(hard) == len(clips)
    assert {r["label"] for r in positives} == {"1"} and {r["label"] for r in negatives + hard} == {
        "0"
    }
    # every up-call once (one placement), at least 60 % inside its clip; nothing else positive
    found = []
    for r in positives:
        rec, start = by_rel[r["rel"]], float(r["start_s"])
        inside = [c for c in rec.calls if _inside(c, start) >= 0.6 - 1e-6]
        assert inside, r
        assert r["selection_label"] == "upcall"
        found.append((r["rel"], min(inside, key=lambda c: abs(c.begin_s - start)).begin_s))
    assert sorted(found) == sorted(
        (a.spec.rel, c.begin_s) for a in survey.recorded for c in a.calls
    )
    # negatives keep --guard away from every selection; hard negatives hold another sound and
    # keep away from the up-calls; about two per positive (the default), some of each
    for r in negatives + hard:
        rec, start = by_rel[r["rel"]], float(r["start_s"])
        assert 0.0 <= start <= rec.duration_s - CLIP_S
        assert all(_gap(c, start) >= GUARD_S - 1e-6 for c in rec.calls), r
        if r["kind"] == "negative":
            assert all(_gap(b, start) >= GUARD_S - 1e-6 for b in rec.boxes), r
        else:
            assert any(_gap(b, start) < 0 for b in rec.boxes if b.label != "upcall"), r
            assert r["selection_label"] not in ("", "upcall")
    assert hard and negatives
    assert len(negatives) + len(hard) == pytest.approx(2 * len(positives), abs=len(by_rel))


def test_clips_name_the_selection_they_came_from(data):
    """clips.csv's table and row (the line, header = 1) lead back to the selection: its label,
    its file (Begin File in a file-sequence table) and its place (File Offset (s))."""
    tables = {}
    for r in rows(data / "clips.csv", ","):
        if r["kind"] == "negative":
            assert (r["table"], r["row"], r["selection_label"]) == ("", "", "")
            continue
        if r["table"] not in tables:
            lines = Path(r["table"]).read_text(encoding="utf-8-sig").splitlines()
            tables[r["table"]] = (lines[0].split("\t"), lines)
        header, lines = tables[r["table"]]
        cells = dict(zip(header, lines[int(r["row"]) - 1].split("\t"), strict=True))
        assert cells["Tags"] == r["selection_label"]
        begin, end = float(cells["Begin Time (s)"]), float(cells["End Time (s)"])
        if "Begin File" in cells:  # a file-sequence table: the selection's own file and place
            assert cells["Begin File"] == Path(r["rel"]).name
            begin, end = (
                float(cells["File Offset (s)"]),
                float(cells["File Offset (s)"]) + (end - begin),
            )
        start = float(r["start_s"])
        overlap = min(end, start + CLIP_S) - max(begin, start)
        if r["kind"] == "positive":
            assert overlap >= 0.6 * min(end - begin, CLIP_S) - 1e-3, r
        else:
            assert overlap > 0, r


def test_clip_audio_site_and_clock_time(by_rel, data):
    for r in rows(data / "clips.csv", ","):
        rec = by_rel[r["rel"]]
        clip, rate = sf.read(data / "train" / r["clip_name"])
        info = sf.info(data / "train" / r["clip_name"])
        assert (rate, info.channels, info.subtype, len(clip)) == (RATE, 1, "PCM_16", 4000)
        # the clip is the recording's audio there (at 8 kHz: band-limited to 2 kHz)
        source = _source(rec.path, float(r["start_s"]))
        corr = np.corrcoef(clip, source)[0, 1]
        assert corr > (0.999 if rec.spec.rate == RATE else 0.98), (r, corr)
        assert r["site"] == rec.spec.rel.split("/")[0]
        assert Path(r["recording"]).resolve() == rec.path.resolve()
        when = datetime.fromisoformat(r["start_time"])
        expected = rec.spec.start + timedelta(seconds=float(r["start_s"]))
        assert when.utcoffset() == timedelta(0)
        assert abs((when - expected).total_seconds()) < 1e-3


def test_fit_recordings_splits_by_recording_site_and_matches_clips(run, data):
    # `fit --recordings` cut the same clips as `clips` with the same settings
    assert (run / "clips" / "train.csv").read_text() == (data / "train.csv").read_text()
    clips = rows(run / "clips" / "clips.csv", ",")
    assert clips == rows(data / "clips.csv", ",")
    rel = {Path(r["clip_name"]).stem: r["rel"] for r in clips}
    sides = {}
    for side in ("train", "val"):
        lines = (run / "lists" / f"{side}.txt").read_text().split("\n")
        sides[side] = {rel[Path(line.split()[0]).stem] for line in lines if line.strip()}
    assert sides["train"] and sides["val"]
    assert not sides["train"] & sides["val"]  # no recording on both sides
    lists = json.loads((run / "lists" / "lists.json").read_text())
    assert lists["group_by"] in ("site", "recording")  # the manifest says how it grouped
    assert lists["groups"]["train"] >= 1 and lists["groups"]["val"] >= 1


def _clock(start: datetime, seconds: float) -> tuple[str, str]:
    t = start + timedelta(seconds=round(seconds, 3))
    return t.strftime("%Y/%m/%d"), t.strftime("%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def test_detections_carry_dates_clock_times_and_sound_boxes(by_rel, detections, threshold):
    total = 0
    for rel, rec in by_rel.items():
        table = rows(detections / f"{rel}.detections.txt")
        total += len(table)
        for r in table:
            begin, end = float(r["Begin Time (s)"]), float(r["End Time (s)"])
            low, high = float(r["Low Freq (Hz)"]), float(r["High Freq (Hz)"])
            assert 0 <= begin < end <= rec.duration_s and 0 <= low < high <= RATE / 2
            assert "Annotation" in r and float(r["Score"]) >= threshold
            # the peak window's centre: the box is the call found in that 2-s window
            assert begin - CLIP_S / 2 <= float(r["Peak Score Time (s)"]) <= end + CLIP_S / 2
            assert (r["Begin Date"], r["Begin Clock Time"]) == _clock(rec.spec.start, begin)
    assert total > 0  # else the checks above checked nothing
    csv_rows = rows(detections / "detections.csv", ",")
    assert len(csv_rows) == total
    for r in csv_rows:
        rec = by_rel[r["rel"]]
        when = datetime.fromisoformat(r["begin_time"])
        expected = rec.spec.start + timedelta(seconds=float(r["begin_s"]))
        assert abs((when - expected).total_seconds()) < 1e-3 and when.utcoffset() == timedelta(0)


def test_recordings_csv_and_the_file_sequence_add_up(by_rel, detections):
    effort = rows(detections / "recordings.csv", ",")
    order = sorted(by_rel, key=lambda rel: by_rel[rel].spec.start)
    assert [r["rel"] for r in effort] == order  # time order
    sources = {"wav": "file name (YYYYMMDD_HHMMSS)", "flac": "file name (SoundTrap)"}
    offset = 0.0
    for r in effort:
        rec = by_rel[r["rel"]]
        assert datetime.fromisoformat(r["start_time"]) == rec.spec.start
        assert r["start_source"].startswith(sources[rec.spec.rel.rsplit(".", 1)[1]])
        assert float(r["duration_s"]) == pytest.approx(rec.duration_s)
        # Raven's file sequence: each file begins where the ones before it end (gaps left out)
        assert float(r["sequence_offset_s"]) == pytest.approx(offset)
        offset += rec.duration_s
    listed = (detections / "sequence.txt").read_text().split()
    assert [Path(p).name for p in listed] == [Path(rel).name for rel in order]

    combined = rows(detections / "detections.txt")
    starts = {Path(r["rel"]).name: float(r["sequence_offset_s"]) for r in effort}
    per_file = {Path(rel).name: rows(detections / f"{rel}.detections.txt") for rel in by_rel}
    assert len(combined) == sum(len(t) for t in per_file.values())
    seen = {name: 0 for name in per_file}
    for r in combined:
        name = r["Begin File"]
        offset = float(r["File Offset (s)"])
        assert float(r["Begin Time (s)"]) == pytest.approx(starts[name] + offset, abs=1e-5)
        assert Path(r["Begin Path"]).name == name
        own = per_file[name][seen[name]]  # the same rows, in the same order, per file
        seen[name] += 1
        assert offset == pytest.approx(float(own["Begin Time (s)"]), abs=1e-5)
        length = float(r["End Time (s)"]) - float(r["Begin Time (s)"])
        assert length == pytest.approx(
            float(own["End Time (s)"]) - float(own["Begin Time (s)"]), abs=1e-5
        )
    begins = [float(r["Begin Time (s)"]) for r in combined]
    assert begins == sorted(begins)


def test_presence_counts_the_detections_per_hour(by_rel, detections, threshold, tmp_path):
    out = tmp_path / "presence"
    assert upcall("presence", detections, "--out", out, "--threshold", threshold) == 0
    # every detection counted once (per-file tables, not the combined one), in its clock hour
    counts: dict[str, int] = {}
    for rel, rec in by_rel.items():
        for r in rows(detections / f"{rel}.detections.txt"):
            t = rec.spec.start + timedelta(seconds=float(r["Begin Time (s)"]))
            hour = t.replace(minute=0, second=0, microsecond=0).isoformat()
            counts[hour] = counts.get(hour, 0) + 1
    hourly = {datetime.fromisoformat(r["start_utc"]).isoformat(): r
              for r in rows(out / "presence.csv", ",")}  # fmt: skip
    assert len(hourly) == 24  # the one day, every hour
    minutes = {"2024-03-01T12:00:00+00:00": 6.0, "2024-03-01T13:00:00+00:00": 2.0,
               "2024-03-01T15:00:00+00:00": 4.0}  # fmt: skip
    for hour, r in hourly.items():
        assert float(r["effort_min"]) == pytest.approx(minutes.get(hour, 0.0)), hour
        assert int(r["detections"]) == counts.get(hour, 0), hour
        if hour in minutes:
            assert r["presence"] == ("1" if counts.get(hour) else "0")
        else:  # no audio (14:00 between the sites' files): no effort, not "no calls"
            assert r["presence"] == ""
    summary = json.loads((out / "presence.json").read_text())
    assert summary["detections"] == sum(counts.values())
    assert summary["hours_with_effort"] == 3
    assert summary["hours_with_presence"] == sum(1 for n in counts.values() if n)
    assert (out / "diel.png").stat().st_size > 1000


@pytest.mark.parametrize("truth", ["analysts' tables", "up-calls alone"])
def test_evaluate_states_the_survey_figures(survey, detections, threshold, truth, tmp_path):
    out = tmp_path / "eval"
    if truth == "analysts' tables":  # Raven-style, other labels too, site1 as a file sequence
        args = [survey.tables, "--label-column", "Tags", "--positive", "upcall"]
    else:
        args = [survey.calls]
    assert upcall("evaluate", *args, detections, "--out", out, "--threshold", threshold) == 0
    ev = json.loads((out / "evaluation.json").read_text())
    calls = sum(len(a.calls) for a in survey.recorded)
    found = sum(len(rows(detections / f"{a.spec.rel}.detections.txt")) for a in survey.recorded)
    assert (ev["truth"], ev["detections"]) == (calls, found)
    assert ev["target_recall"] == 0.9 and "fp_per_hour_at_recall" in ev
    hours = sum(a.duration_s for a in survey.recorded) / 3600
    fp = ev["detections"] - round(ev["precision"] * ev["detections"])
    assert ev["hours"] == pytest.approx(hours) and ev["hours_source"] == "recordings.csv"
    assert ev["fp_per_hour"] == pytest.approx(fp / hours, rel=1e-3)
    # presence by clock hour: the truth's calls fall in 12:00, 13:00 and 15:00
    assert ev["hourly_bins"] == "UTC clock hours" and ev["truth_hours"] == 3
    per = rows(out / "per_recording.csv", ",")
    assert len(per) == len(survey.recorded)
    assert sum(int(r["truth"]) for r in per) == calls
