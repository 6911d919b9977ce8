"""``upcall synth-recording``: length, format, truth table, calls where the truth says, bouts."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from upcall import cli
from upcall.audio import recording
from upcall.audio.raven import read_table
from upcall.audio.recording import RecordingSettings, write_recording
from upcall.errors import UpcallError

MINUTES = 4.0


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "sea.wav"
    selections = write_recording(out, RecordingSettings(minutes=MINUTES, seed=5, difficulty="easy"))
    return out, selections


def test_wav_format_and_length(rec):
    out, _ = rec
    info = sf.info(out)
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (
        "WAV",
        "PCM_16",
        2000,
        1,
        int(MINUTES * 60 * 2000),
    )


def test_truth_table_matches_and_lies_inside(rec):
    out, selections = rec
    read = read_table(f"{out}.selections.txt")
    assert len(read) == len(selections)
    for r, s in zip(read, selections, strict=True):  # the table keeps 6 decimals
        assert (r.begin_s, r.end_s, r.low_hz, r.high_hz) == pytest.approx(
            (s.begin_s, s.end_s, s.low_hz, s.high_hz), abs=1e-6
        )
        assert r.label == s.label and r.score is None
    assert len(selections) >= 2
    for s in selections:
        assert 0 <= s.begin_s < s.end_s <= MINUTES * 60
        assert 0.5 <= s.end_s - s.begin_s <= 1.5
        assert 50 <= s.low_hz < s.high_hz <= 250 and s.label == "upcall"


def _band_power(x, rate, lo, hi):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return spec[(f >= lo) & (f <= hi)].mean()


def _call_to_background(out, selections):
    x, rate = sf.read(out)
    ratios = []
    for s in selections:
        a, b = round(s.begin_s * rate), round(s.end_s * rate)
        n = b - a
        # the same band just before the call (or after it, for one at the very start)
        ref = slice(a - n, a) if a >= n else slice(b, b + n)
        ratios.append(
            _band_power(x[a:b], rate, s.low_hz, s.high_hz)
            / _band_power(x[ref], rate, s.low_hz, s.high_hz)
        )
    return np.array(ratios)


def test_calls_are_in_the_audio_where_the_truth_says(rec):
    ratios = _call_to_background(*rec)
    # easy band SNRs are 6–25 dB, so nearly every call stands out
    assert np.median(ratios) > 3 and np.mean(ratios > 1.5) >= 0.75


def test_hard_calls_are_fainter_and_their_boxes_hold_the_echoes(rec, tmp_path):
    out = tmp_path / "hard.wav"
    selections = write_recording(out, RecordingSettings(minutes=MINUTES, seed=5))  # hard
    assert len(selections) >= 2
    assert all(0.5 <= s.end_s - s.begin_s <= 1.5 + 0.12 for s in selections)
    assert any(s.end_s - s.begin_s > 1.0 for s in selections)
    hard = _call_to_background(out, selections)
    assert np.median(hard) < np.median(_call_to_background(*rec)) and np.median(hard) > 1


def test_deterministic_per_seed(rec, tmp_path):
    out, _ = rec
    again = tmp_path / "again.wav"
    write_recording(again, RecordingSettings(minutes=MINUTES, seed=5, difficulty="easy"))
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.wav"
    write_recording(other, RecordingSettings(minutes=MINUTES, seed=6, difficulty="easy"))
    assert other.read_bytes() != out.read_bytes()


def test_rate_keeps_times_and_frequencies(tmp_path):
    slow = recording.truth(RecordingSettings(minutes=3.0, seed=2))
    out = tmp_path / "fast.wav"
    fast = write_recording(out, RecordingSettings(minutes=3.0, seed=2, rate=8000))
    assert sf.info(out).samplerate == 8000 and sf.info(out).frames == 3 * 60 * 8000
    assert len(fast) == len(slow)
    for f, s in zip(
        fast, slow, strict=True
    ):  # begin times snap to the sample, so agree to 1/2000 s
        assert (f.begin_s, f.low_hz, f.high_hz) == pytest.approx(
            (s.begin_s, s.low_hz, s.high_hz), abs=1 / 2000
        )
    x, rate = sf.read(out)
    s = fast[0]
    a, b = round(s.begin_s * rate), round(s.end_s * rate)
    in_band = _band_power(x[a:b], rate, s.low_hz, s.high_hz)
    assert in_band > 20 * _band_power(x[a:b], rate, 1500.0, 3500.0)


def test_label_others_boxes_the_other_sounds_and_changes_no_sample(rec, tmp_path):
    out, calls = rec
    other = tmp_path / "others.wav"
    settings = RecordingSettings(minutes=MINUTES, seed=5, difficulty="easy", label_others=True)
    selections = write_recording(other, settings)
    assert other.read_bytes() == out.read_bytes()  # the same audio: only the table says more
    assert [s for s in selections if s.label == "upcall"] == calls
    table = read_table(f"{other}.selections.txt")
    assert [s.label for s in table] == [s.label for s in selections]
    assert [s.begin_s for s in table] == pytest.approx([s.begin_s for s in selections], abs=1e-6)
    others = [s for s in selections if s.label != "upcall"]
    labels = {s.label for s in others}
    assert len(others) > len(calls) and {"humpback", "moan", "downsweep"} <= labels
    assert labels <= set(recording.OTHER_LABELS.values()) | {recording.SHIP_LABEL}
    assert [s.begin_s for s in selections] == sorted(s.begin_s for s in selections)
    for s in others:
        assert 0 <= s.begin_s < s.end_s <= MINUTES * 60 and 0 < s.low_hz < s.high_hz <= 1000
    # each box holds its sound: a tonal in the box's band louder than just before it
    tonal = [s for s in others if s.label != recording.SHIP_LABEL and s.high_hz - s.low_hz > 20]
    assert np.median(_call_to_background(other, tonal)) > 2


def test_ships_are_boxed_over_their_loud_stretch():
    settings = RecordingSettings(minutes=60.0, seed=1, label_others=True)
    whole = recording.plan(settings)
    ships = [s for s in recording.truth(settings) if s.label == recording.SHIP_LABEL]
    assert ships and len(ships) <= len(whole.ships)
    fundamentals = [ship.f0 for ship, _ in whole.ships]
    for box in ships:
        assert 0 <= box.begin_s < box.end_s <= 3600 and box.end_s - box.begin_s >= 1.0
        assert any(f * 0.98 <= box.low_hz <= f for f in fundamentals)


def test_shipping_regime_changes_the_noise_only():
    quiet = RecordingSettings(minutes=60.0, seed=2)
    busy = RecordingSettings(minutes=60.0, seed=2, regime="shipping")
    a, b = recording.plan(quiet), recording.plan(busy)
    assert recording.truth(quiet) == recording.truth(busy)  # the same calls, same times
    assert a.ambient == b.ambient and b.ships[: len(a.ships)] == a.ships
    assert set(a.events) < set(b.events)  # the default's events, their streams included
    extra = set(b.events) - set(a.events)
    assert {e.kind for e in extra} == {"transient"} and len(extra) > len(a.events)
    assert len(b.ships) > 3 * len(a.ships)
    level = np.median([g for _, g in b.ships[len(a.ships) :]]) / np.median([g for _, g in a.ships])
    assert level > 2  # 10 dB louder by setting, whatever the draws


def test_flac_at_8_khz(tmp_path):
    out = tmp_path / "r.flac"
    selections = write_recording(out, RecordingSettings(minutes=1.0, seed=3, rate=8000))
    info = sf.info(out)
    assert (info.format, info.subtype, info.samplerate, info.frames) == (
        "FLAC",
        "PCM_16",
        8000,
        60 * 8000,
    )
    assert len(read_table(f"{out}.selections.txt")) == len(selections)


def test_calls_come_in_bouts():
    events = recording.plan(RecordingSettings(minutes=60.0, seed=1)).events
    times = np.array([e.start_s for e in events if e.kind == "upcall"])
    gaps = np.diff(times)
    within = gaps[gaps <= 60.0]
    between = gaps[gaps > 60.0]
    assert within.min() >= 10.0 and len(between) >= 3
    bout_sizes = np.diff(np.flatnonzero(np.concatenate([[True], gaps > 60.0, [True]])))
    assert bout_sizes.min() >= 2 and bout_sizes.max() <= 8


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (RecordingSettings(minutes=0.0), "--minutes"),
        (RecordingSettings(minutes=1.0, rate=500), "--rate"),
        (RecordingSettings(minutes=1.0, seed=-3), "--seed"),
        (RecordingSettings(minutes=1.0, regime="harbour"), "--regime"),
    ],
)
def test_bad_settings(tmp_path, settings, message):
    with pytest.raises(UpcallError, match=message):
        write_recording(tmp_path / "r.wav", settings)
    assert list(tmp_path.iterdir()) == []


def test_cli(tmp_path, capsys):
    out = tmp_path / "r.wav"
    assert cli.main(["synth-recording", str(out), "--minutes", "0.5", "--seed", "1"]) == 0
    assert sf.info(out).frames == 60000 and (tmp_path / "r.wav.selections.txt").exists()
    assert "with 1 up-calls (" in capsys.readouterr().out
    both = tmp_path / "both.wav"
    argv = ["synth-recording", str(both), "--minutes", "0.5", "--seed", "1", "--label-others"]
    assert cli.main(argv) == 0
    assert re.search(r"with 1 up-calls and \d+ other sounds \(", capsys.readouterr().out)
    assert both.read_bytes() == out.read_bytes()
    assert cli.main(["synth-recording", str(out), "--minutes", "1", "--rate", "100"]) == 1
    assert "--rate must be between 1000 and 192000 Hz, got 100" in capsys.readouterr().err
