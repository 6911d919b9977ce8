"""``upcall clips``: real recordings (2 kHz WAV, 8 kHz FLAC) and Raven-style tables in, a Kaggle
layout out, with clips where the tables say, seeded, resumable, and bad files skipped."""

from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from tests.recordings import annotated_recordings, raven_style
from upcall import cli
from upcall.audio.clipscsv import read_clips_csv
from upcall.audio.cutclips import ClipSettings, make_clips

GUARD = 2.0


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    return annotated_recordings(tmp_path_factory.mktemp("survey"))


@pytest.fixture(scope="module")
def data(survey, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips") / "DATA"
    settings = ClipSettings(positive=("upcall",), guard_s=GUARD)
    make_clips([survey.recordings], [survey.tables], out, settings).finish()
    return out


def _by_rel(survey):
    return {r.spec.rel: r for r in survey.recorded}


def _holds(start: float, box) -> bool:
    """Whether the window at ``start`` holds 60 % of ``box`` (a longer box: lies inside it)."""
    if box.end_s - box.begin_s > 2.0:
        return box.begin_s - 1e-6 <= start and start + 2.0 <= box.end_s + 1e-6
    overlap = min(start + 2.0, box.end_s) - max(start, box.begin_s)
    return overlap >= 0.6 * (box.end_s - box.begin_s) - 1e-6


def test_train_csv_and_clips_csv_list_the_same_clips_in_the_kaggle_layout(data):
    with open(data / "train.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["clip_name", "label"]
    origins = read_clips_csv(data / "clips.csv")
    assert [(o.clip_name, str(o.label)) for o in origins] == [tuple(r) for r in rows[1:]]
    assert sorted(p.name for p in (data / "train").iterdir()) == sorted(r[0] for r in rows[1:])
    for origin in origins[:5]:
        info = sf.info(data / "train" / origin.clip_name)
        assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (
            "AIFF", "PCM_16", 2000, 1, 4000)  # fmt: skip


def _check_places(origins, survey) -> None:
    """Positives hold a call, negatives keep the guard, hard negatives sit on other labels."""
    for rel, rec in _by_rel(survey).items():
        mine = [o for o in origins if o.rel == rel]
        pos = [o for o in mine if o.kind == "positive"]
        assert len(pos) == len(rec.calls) and len(mine) - len(pos) == 2 * len(pos)
        for o in pos:
            assert o.label == 1 and o.selection_label == "upcall"
            assert any(_holds(o.start_s, b) for b in rec.calls)
        for o in mine:
            assert 0 <= o.start_s <= rec.duration_s - 2.0
            if o.kind == "negative":
                assert o.label == 0 and o.table == "" and o.row is None
                assert all(o.start_s + 2 <= b.begin_s - GUARD + 1e-6 or
                           o.start_s >= b.end_s + GUARD - 1e-6 for b in rec.boxes)  # fmt: skip
            if o.kind == "hard-negative":
                assert o.label == 0 and o.selection_label not in ("", "upcall")
                assert any(_holds(o.start_s, b) for b in rec.boxes if b.label == o.selection_label)
                assert all(o.start_s + 2 <= b.begin_s - GUARD + 1e-6 or
                           o.start_s >= b.end_s + GUARD - 1e-6 for b in rec.calls)  # fmt: skip


def test_positives_hold_their_call_and_negatives_keep_the_guard(data, survey):
    origins = read_clips_csv(data / "clips.csv")
    _check_places(origins, survey)
    kinds = [o.kind for o in origins]
    assert kinds.count("hard-negative") >= 0.3 * (
        kinds.count("negative") + kinds.count("hard-negative")
    )


def test_a_file_sequence_table_gives_each_file_its_clips(tmp_path):
    survey = annotated_recordings(tmp_path, sequence_site="site1")
    out = tmp_path / "DATA"
    settings = ClipSettings(positive=("upcall",), guard_s=GUARD)
    make_clips([survey.recordings], [survey.tables], out, settings).finish()
    origins = read_clips_csv(out / "clips.csv")
    _check_places(origins, survey)
    assert {Path(o.table).name for o in origins if o.rel.startswith("site1/") and o.table} == {
        "site1.Table.1.selections.txt"}  # fmt: skip


def test_provenance_names_table_row_time_and_site(data, survey):
    recorded = _by_rel(survey)
    for o in read_clips_csv(data / "clips.csv"):
        rec = recorded[o.rel]
        assert o.recording == str(rec.path) and o.channel == 0 and o.site == o.rel.split("/")[0]
        assert o.start_time == rec.spec.start + timedelta(milliseconds=round(o.start_s * 1000))
        if o.kind != "negative":
            assert Path(o.table) == rec.table
            lines = rec.table.read_text(encoding="utf-8-sig").splitlines()
            cells = lines[o.row - 1].split("\t")  # the row as Raven wrote it
            assert cells[-1] == o.selection_label
            assert float(cells[3]) <= o.start_s + 2.0 and float(cells[4]) >= o.start_s
        stem = o.rel.replace("/", "__")
        assert o.clip_name == f"{stem}_{round(o.start_s * 1000):09d}.aiff"


def test_clip_audio_is_the_recording_there_at_2_khz(data, survey):
    recorded = _by_rel(survey)
    for o in read_clips_csv(data / "clips.csv")[::7]:
        clip, _ = sf.read(data / "train" / o.clip_name, dtype="int16")
        audio, rate = sf.read(recorded[o.rel].path, dtype="int16")
        first = round(o.start_s * rate)
        if rate == 2000:  # the same samples, bit for bit
            assert np.array_equal(clip, audio[first : first + 4000])
        else:  # the 8 kHz FLAC, band-limited to 2 kHz: as resampling the whole file gives
            whole = resample_poly(audio.astype(float), *Fraction(2000, rate).as_integer_ratio())
            ref = whole[round(o.start_s * 2000) :][:4000]
            assert np.max(np.abs(clip - ref)) <= 0.01 * np.max(np.abs(ref)) + 2


def _copy(survey, folder: Path) -> tuple[Path, Path]:
    shutil.copytree(survey.recordings, folder / "recordings")
    shutil.copytree(survey.tables, folder / "tables")
    return folder / "recordings", folder / "tables"


def _rows(path: Path) -> list:
    """clips.csv's rows less the folders of the recordings and tables (copies here)."""
    return [replace(o, recording=Path(o.recording).name, table=Path(o.table).name)
            for o in read_clips_csv(path)]  # fmt: skip


def test_seeded_resumable_and_a_new_recording_moves_no_clip(data, survey, tmp_path):
    recordings, tables = _copy(survey, tmp_path)
    settings = ClipSettings(positive=("upcall",), guard_s=GUARD)
    out = tmp_path / "again"
    make_clips([recordings], [tables], out, settings).finish()
    assert (out / "train.csv").read_bytes() == (data / "train.csv").read_bytes()
    assert _rows(out / "clips.csv") == _rows(data / "clips.csv")
    clips = sorted((out / "train").iterdir())
    for gone in clips[::3]:
        gone.unlink()
    clips[1].write_bytes(clips[1].read_bytes()[:100])  # cut short by a crash
    kept = {p.name: p.stat().st_mtime_ns for p in clips if p.exists() and p != clips[1]}
    first = survey.recorded[0]
    new = recordings / "site3" / "AM02_20240302_000000.wav"  # a copy of the first, at a new site
    new.parent.mkdir()
    shutil.copy(first.path, new)
    raven_style(first.truth, tables / "site3" / f"{new.stem}.Table.1.selections.txt")
    make_clips([recordings], [tables], out, settings).finish()
    for p in clips:
        assert p.read_bytes() == (data / "train" / p.name).read_bytes()
    assert all(p.stat().st_mtime_ns == kept[p.name] for p in clips if p.name in kept)
    now = _rows(out / "clips.csv")
    assert [o for o in now if not o.rel.startswith("site3/")] == _rows(data / "clips.csv")
    site3 = [o.start_s for o in now if o.rel.startswith("site3/")]
    assert site3 and site3 != [o.start_s for o in now if o.rel == first.spec.rel]
    assert {o.site for o in now} == {"site1", "site2", "site3"}
    other = tmp_path / "seed1"
    make_clips([recordings], [tables], other, replace(settings, seed=1)).finish()
    assert (other / "train.csv").read_bytes() != (out / "train.csv").read_bytes()


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["clips", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_corrupt_recording_is_reported_and_skipped(survey, tmp_path, capsys):
    recordings = tmp_path / "recordings"
    shutil.copytree(survey.recordings / "site1", recordings / "site1")
    broken = recordings / "site1" / "AM01_20240301_125800.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(40))
    out = tmp_path / "DATA"
    code, text, err = _cli(capsys, recordings, "--annotations", survey.tables / "site1",
                           "--out", out, "--positive", "upcall")  # fmt: skip
    assert code == 1
    lines = err.strip().splitlines()
    assert any(line.startswith(f"{broken}: ") for line in lines)
    assert lines[-1] == ("upcall clips: error: 1 of 2 recordings failed (listed above); the "
                         "other 1 were done")  # fmt: skip
    rels = {o.rel for o in read_clips_csv(out / "clips.csv")}
    assert rels == {"site1/AM01_20240301_120000.wav"}
    assert "site1/AM01_20240301_125800.wav" in text and "total:" in text


def test_cli_errors_are_one_line(survey, tmp_path, capsys):
    base = [survey.recordings, "--annotations", survey.tables, "--out"]
    cases = [
        ([tmp_path / "nope", "--annotations", survey.tables, "--out", tmp_path / "a"],
         f"{tmp_path / 'nope'}: no such file or folder"),
        ([*base, tmp_path / "b", "--positive", "NARW"],
         "no selection of NARW in the tables of 3 recording(s)"),
        ([*base, tmp_path / "c", "--placements", "0"], "--placements must be 1 or more"),
        ([*base, tmp_path / "d", "--label-column", "Species"], "no label column 'Species'"),
    ]  # fmt: skip
    for argv, message in cases:
        code, _, err = _cli(capsys, *argv)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("upcall clips: error: ") and message in err, err


def test_other_settings_are_refused_unless_forced(survey, tmp_path, capsys):
    out = tmp_path / "DATA"
    argv = [survey.recordings, "--annotations", survey.tables, "--out", out]
    assert _cli(capsys, *argv)[0] == 0
    code, _, err = _cli(capsys, *argv, "--guard", "5")
    assert code == 1 and "made with other settings" in err and "'guard_s': (2.0, 5.0)" in err
    assert _cli(capsys, *argv, "--guard", "5", "--force")[0] == 0
    assert ClipSettings.read(out).guard_s == 5.0
    other = tmp_path / "other"
    (other / "mine.txt").parent.mkdir()
    (other / "mine.txt").write_text("not ours")
    code, _, err = _cli(capsys, survey.recordings, "--annotations", survey.tables, "--out", other)
    assert code == 1 and "refusing to replace it" in err and (other / "mine.txt").exists()


def test_a_recording_without_a_table_gives_negatives_only_when_asked(survey, tmp_path):
    recordings, tables = _copy(survey, tmp_path)
    quiet = recordings / "site9" / "quiet.wav"
    quiet.parent.mkdir()
    sf.write(quiet, np.zeros(2000 * 60, dtype=np.int16), 2000, subtype="PCM_16")
    plain = ClipSettings(positive=("upcall",))
    make_clips([recordings], [tables], tmp_path / "a", plain).finish()
    assert not any("quiet" in o.rel for o in read_clips_csv(tmp_path / "a" / "clips.csv"))
    asked = replace(plain, unannotated_negatives=True)
    make_clips([recordings], [tables], tmp_path / "b", asked).finish()
    quiet_rows = [o for o in read_clips_csv(tmp_path / "b" / "clips.csv") if "quiet" in o.rel]
    assert quiet_rows and {o.kind for o in quiet_rows} == {"negative"}
    assert all(o.start_time is None and o.table == "" for o in quiet_rows)


def test_channel_picks_the_audio_of_a_multichannel_recording(survey, tmp_path):
    first = survey.recorded[0]
    audio, rate = sf.read(first.path, dtype="int16")
    stereo = tmp_path / "rec" / "two.wav"
    stereo.parent.mkdir()
    sf.write(stereo, np.stack([np.zeros_like(audio), audio], axis=1), rate, subtype="PCM_16")
    raven_style(first.truth, tmp_path / "tables" / "two.Table.1.selections.txt")
    settings = ClipSettings(positive=("upcall",), channel=1)
    make_clips([stereo], [tmp_path / "tables"], tmp_path / "DATA", settings).finish()
    origins = read_clips_csv(tmp_path / "DATA" / "clips.csv")
    assert len([o for o in origins if o.kind == "positive"]) == len(first.calls)
    for o in origins:
        clip, _ = sf.read(tmp_path / "DATA" / "train" / o.clip_name, dtype="int16")
        first_sample = round(o.start_s * rate)
        assert o.channel == 1 and np.array_equal(clip, audio[first_sample : first_sample + 4000])


def test_start_times_csv_gives_the_clock_and_the_site(survey, tmp_path):
    first = survey.recorded[0]
    table = tmp_path / "starts.csv"
    table.write_text(f"file,start,site\n{first.spec.rel},2024-03-05T06:00:00-04:00,Cape Cod\n")
    settings = ClipSettings(positive=("upcall",), start_times=table)
    make_clips([survey.recordings], [survey.tables], tmp_path / "DATA", settings).finish()
    assert ClipSettings.read(tmp_path / "DATA").start_times == table  # absolute already
    zone = timezone(timedelta(hours=-4))
    for o in read_clips_csv(tmp_path / "DATA" / "clips.csv"):
        if o.rel == first.spec.rel:
            start = datetime(2024, 3, 5, 6, tzinfo=zone) + timedelta(
                milliseconds=round(o.start_s * 1000)
            )
            assert o.start_time == start and o.start_time.utcoffset() == timedelta(hours=-4)
            assert o.site == "Cape Cod"
        else:  # the others keep the time in their names, and their top folder as the site
            assert o.start_time.tzinfo == UTC and o.site == o.rel.split("/")[0]
