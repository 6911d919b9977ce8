"""benchmarks/ceilings.py: the matched filter and the oracles on real synthetic clips."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import ceilings  # noqa: E402  (benchmarks/ is not a package)

from upcall.audio import sounds, synth  # noqa: E402


def test_matched_filter_finds_a_known_call_in_noise_and_not_in_noise_alone():
    rng = np.random.default_rng(5)
    template = sounds.upcall(rng, sounds.RATE, "hard")[0]
    alone, with_call = [], []
    for _ in range(20):
        noise = rng.normal(0, 1, 4000)
        alone.append(ceilings.matched_filter(noise, template, 0.4))
        noise[1000 : 1000 + len(template)] += (
            0.5 * template
        )  # ‖template‖ ≈ 26: z ≈ 11 after the clipper
        with_call.append(ceilings.matched_filter(noise, template, 0.4))
    assert 2 < np.median(alone) < 5 and max(alone) < 6  # max over ~3,000 onsets of N(0, 1)
    assert min(with_call) > 6


def test_ceilings_know_the_labels_and_the_calls():
    result = ceilings.ceilings(2000, 150)
    np.testing.assert_array_equal(result.labels, synth.labels_for(2000, "test", 150, 0.234))
    table = {name: (auc, recall) for name, auc, recall in result.table()}
    assert table["oracle: call present"][0] > 0.97  # only missed calls (label 0) tie with whales
    assert table["matched filter, true call"][0] > 0.9
    assert ceilings.recall_at_precision(np.array([1.0, 1.0, 0.5]), np.array([1, 0, 1]), 0.9) == 0
