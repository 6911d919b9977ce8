"""The signal model's components, and what each difficulty promises."""

import dataclasses
import hashlib

import numpy as np
import pytest

from upcall.audio import sounds, synth

HARD, EASY = sounds.DIFFICULTIES["hard"], sounds.DIFFICULTIES["easy"]


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_upcall_sweeps_up_through_its_band(rng, difficulty):
    for _ in range(20):
        sound, lo, hi = sounds.upcall(rng, sounds.RATE, difficulty)
        dip = 12 if difficulty == "hard" else 0  # a small initial dip may start below 50 Hz
        assert 50 - dip <= lo < hi <= 250 and 0.5 * sounds.RATE <= len(sound) <= 1.5 * sounds.RATE
        halves = np.array_split(sound, 2)
        peak = [np.argmax(np.abs(np.fft.rfft(h, 8192))) * sounds.RATE / 8192 for h in halves]
        assert lo - 5 <= peak[0] < peak[1] <= hi + 5


def _mid_frequency_above_centre(rng, difficulty) -> float:
    """Fraction of calls whose middle is 3 Hz above the band's centre: decelerating sweeps."""
    above = []
    for _ in range(200):
        sound, lo, hi = sounds.upcall(rng, sounds.RATE, difficulty)
        n = len(sound)
        middle = sound[int(0.4 * n) : int(0.6 * n)]
        peak = np.argmax(np.abs(np.fft.rfft(middle, 8192))) * sounds.RATE / 8192
        above.append(peak > 0.5 * (lo + hi) + 3)
    return float(np.mean(above))


def test_hard_contours_both_accelerate_and_decelerate(rng):
    assert _mid_frequency_above_centre(rng, EASY) == 0.0  # J-shaped only
    assert _mid_frequency_above_centre(rng, dataclasses.replace(HARD, p_dip=0.0)) > 0.08


def test_easy_clips_are_generator_1s(rng):
    """--difficulty easy keeps the old data bit for bit (hash of generator 1's clips)."""
    clips = synth.make_clips(7, synth.labels_for(7, "train", 200, 0.234), difficulty="easy")
    digest = "79491062fb050ccbfe8beed427d5b2d7ddbecf6b00e7764a378037f14ce3b6cf"
    assert hashlib.sha256(clips.tobytes()).hexdigest() == digest


def test_hard_band_snrs_reach_well_below_zero(rng):
    seen = np.array([HARD.call_snr_db(rng) for _ in range(4000)])
    missed = np.array([HARD.missed_snr_db(rng) for _ in range(4000)])
    assert np.mean(seen < 0) > 0.05 and np.mean(seen < -3) > 0.01 and 3 < np.median(seen) < 9
    assert np.median(missed) < np.median(seen) - 4  # the analyst misses the faint ones
    easy = np.array([EASY.call_snr_db(rng) for _ in range(1000)])
    assert easy.min() >= 6 and easy.max() <= 25


@pytest.mark.parametrize(("difficulty", "least"), [(EASY, 0.85), (HARD, 0.6)])
def test_calls_lie_mostly_inside_the_clip(rng, difficulty, least):
    inside = []
    for _ in range(3000):
        duration = rng.uniform(0.5, 1.5)
        first = sounds.call_onset(rng, duration, 2.0, 2000, difficulty) / 2000
        inside.append((min(first + duration, 2.0) - max(first, 0.0)) / duration)
    assert min(inside) >= least - 0.002 and np.mean(np.array(inside) < least + 0.1) > 0.02


def test_multipath_adds_delayed_weaker_copies(rng):
    sound = np.sin(np.linspace(0, 300, 1000))
    for _ in range(20):
        out = sounds.multipath(rng, sound, 2000)
        tail = len(out) - len(sound)
        assert 20 <= tail <= 240  # the last echo 10–120 ms after the direct path
        first_echo = np.flatnonzero(out[: len(sound)] != sound)[0]
        assert 20 <= first_echo <= tail + 1  # +1: the echo starts at sin(0) = 0
        np.testing.assert_array_equal(out[:first_echo], sound[:first_echo])
        assert np.abs(out[len(sound) :]).max() <= 1.8 * np.abs(sound).max()


def test_label_noise_is_a_missed_call_in_a_few_negatives(rng):
    truths = [sounds.described_clip(rng, 0)[1] for _ in range(2000)]
    missed = [t for t in truths if t.call]
    assert 20 <= len(missed) <= 65 and all(t.missed for t in missed)  # 2 % of 2000 = 40 (sd 6)
    assert np.median([t.snr_db for t in missed]) < 3  # faint: the analyst did not see them
    easy = [sounds.described_clip(rng, 0, difficulty="easy")[1] for _ in range(200)]
    labelled = [sounds.described_clip(rng, 1)[1] for _ in range(200)]
    assert not any(t.call for t in easy)  # easy data has none
    assert all(t.call and not t.missed for t in labelled)  # a positive holds one labelled call


def test_hard_clips_keep_their_samples():
    """The hard clips of generator 2, bit for bit (hash of the samples before described_clip)."""
    x = np.stack([sounds.clip(synth.clip_rng(11, "train", i), i % 2) for i in range(1, 401)])
    digest = "490831b0286b534f93284978962ea28abde4fea7e137b5023b41b961c6e53066"
    assert hashlib.sha256(x.tobytes()).hexdigest() == digest


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_described_clip_draws_what_clip_draws(difficulty):
    for seed in range(150):
        for label in (0, 1):
            a, b = np.random.default_rng([seed, label]), np.random.default_rng([seed, label])
            x, truth = sounds.described_clip(a, label, difficulty=difficulty)
            assert x.tobytes() == sounds.clip(b, label, difficulty=difficulty).tobytes()
            assert a.random() == b.random()  # and leaves the generator where clip does
            assert truth.label == label and truth.call == (label == 1 or truth.missed)


def test_described_clip_says_where_the_call_is(rng):
    for _ in range(100):
        x, truth = sounds.described_clip(rng, 1)
        n = len(truth.direct)
        inside = min(truth.onset + n, len(x)) - max(truth.onset, 0)
        assert 0.5 * 2000 <= n <= 1.5 * 2000 and inside >= 0.6 * n - 2
        assert 50 - 12 <= truth.low_hz < truth.high_hz <= 250 and np.isfinite(truth.snr_db)
        assert truth.confounder in ("", *sounds.CONFOUNDERS)
    loud = []  # a clear call: the clip correlates with its direct path where the truth says
    while len(loud) < 10:
        x, truth = sounds.described_clip(rng, 1)
        if truth.snr_db > 15 and 0 <= truth.onset <= len(x) - len(truth.direct):
            part = x[truth.onset : truth.onset + len(truth.direct)]
            loud.append(np.dot(part, truth.direct) / np.dot(truth.direct, truth.direct))
    assert 0.5 < np.median(loud) < 1.5  # the clip holds the call at the stated level


def test_unknown_difficulty_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown difficulty 'medium' \(choose from easy, hard\)"):
        sounds.get_difficulty("medium")
