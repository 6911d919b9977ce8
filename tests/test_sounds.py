"""The signal model's components."""

import numpy as np

from upcall.audio import sounds


def test_upcall_sweeps_up_through_its_band(rng):
    sound, lo, hi = sounds.upcall(rng, sounds.RATE)
    assert 50 <= lo < hi <= 250 and 0.5 * sounds.RATE <= len(sound) <= 1.5 * sounds.RATE
    halves = np.array_split(sound, 2)
    peak = [np.argmax(np.abs(np.fft.rfft(h, 8192))) * sounds.RATE / 8192 for h in halves]
    assert lo - 5 <= peak[0] < peak[1] <= hi + 5
