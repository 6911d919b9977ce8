"""The sampling estimate: stratified draws and their 95 % intervals against known truth."""

from __future__ import annotations

import numpy as np
import pytest

from upcall.audio.raven import Selection, read, write_table
from upcall.errors import UpcallError
from upcall.review.sampling import Estimate, clopper_pearson, draw_sample, estimate


def population(size: int, precisions: list[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores and the truth of ``size`` detections: equal score quantile bands whose true
    precision rises as given (so the sampler's quartile bands are these bands)."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.5, 1.0, size)
    edges = np.quantile(scores, np.linspace(0, 1, len(precisions) + 1)[1:-1])
    band = np.searchsorted(edges, scores, side="right")
    return scores, rng.random(size) < np.array(precisions)[band]


def verdicts_from(truth: np.ndarray, indices) -> dict[int, str]:
    return {i: "yes" if truth[i] else "no" for i in indices}


def test_draw_is_seeded_stratified_and_equal_per_band():
    scores, _ = population(4000, [0.5] * 4, seed=1)
    sample = draw_sample(scores, 100, 7)
    assert sample == draw_sample(scores, 100, 7)
    assert sample.indices != draw_sample(scores, 100, 8).indices
    assert [b.size for b in sample.bands] == [1000] * 4
    assert sample.shares() == (25, 25, 25, 25)
    assert len(set(sample.indices)) == 100
    for i in sample.indices:  # each sampled detection lies in its band's score range
        band = sample.bands[sample.band_of[i]]
        assert band.low <= scores[i] <= band.high
    # review order mixes the bands (not 25 of band 0 first)
    assert len({sample.band_of[i] for i in sample.indices[:25]}) > 1


def test_small_band_taken_whole_and_the_rest_shared():
    scores = [0.1] * 3 + [0.5] * 50 + [0.9] * 50
    sample = draw_sample(scores, 30, 0, bands=[0.3, 0.7])
    assert [b.size for b in sample.bands] == [3, 50, 50]
    assert sample.shares() == (3, 13, 14)  # leftover to the higher band
    assert sorted(draw_sample(scores, 500, 0).indices) == list(range(103))  # all of them
    assert draw_sample(scores, 2, 0).shares() == (1, 1)  # never more quantile bands than n
    fixed = draw_sample(scores, 2, 0, bands=[0.3, 0.7])
    assert estimate(fixed, {}).note == "no sampled detections in score band 1"


def test_bad_input_is_one_line():
    with pytest.raises(UpcallError, match="increasing"):
        draw_sample([0.5, 0.6], 1, 0, bands=[0.8, 0.2])
    with pytest.raises(UpcallError, match="finite"):
        draw_sample([0.5, float("nan")], 1, 0)
    sample = draw_sample([0.5, 0.6], 2, 0, bands=1)
    with pytest.raises(UpcallError, match="detection 1: verdict must be one of"):
        estimate(sample, {1: "maybe"})


def test_clopper_pearson_known_values_and_finite_population():
    est = clopper_pearson(8, 10)
    assert est.value == 0.8
    assert est.low == pytest.approx(0.4439, abs=1e-4)  # the published exact interval of 8/10
    assert est.high == pytest.approx(0.9748, abs=1e-4)
    assert clopper_pearson(10, 10).high == 1.0 and clopper_pearson(0, 10).low == 0.0
    assert clopper_pearson(10, 10).low == pytest.approx(0.025 ** (1 / 10))
    assert clopper_pearson(8, 10, size=10) == Estimate(0.8, 0.8, 0.8)
    narrower = clopper_pearson(8, 10, size=12)
    assert est.low < narrower.low < 0.8 < narrower.high < est.high
    assert clopper_pearson(0, 0).value is None


def test_unsure_excluded_pending_counted_outside_ignored():
    scores, truth = population(400, [0.2, 0.9], seed=2)
    sample = draw_sample(scores, 40, 3, bands=2)
    verdicts = verdicts_from(truth, sample.indices)
    unsure = sample.indices[:4]
    for i in unsure:
        verdicts[i] = "Unsure"
    pending = sample.indices[4:7]
    for i in pending:
        verdicts[i] = ""
    outside = next(i for i in range(400) if i not in set(sample.indices))
    verdicts[outside] = "yes"
    est = estimate(sample, verdicts)
    assert (est.unsure, est.pending, est.sampled, est.detections) == (4, 3, 40, 400)
    assert est.yes + est.no == 33
    assert est.yes == sum(truth[i] for i in sample.indices[7:])
    assert sum(b.unsure for b in est.bands) == 4
    assert est.note == ""
    assert est.true_calls.value == pytest.approx(400 * est.precision.value)


def test_overall_waits_for_every_band():
    scores, truth = population(400, [0.2, 0.9], seed=2)
    sample = draw_sample(scores, 40, 3, bands=2)
    first = [i for i in sample.indices if sample.band_of[i] == 0]
    est = estimate(sample, verdicts_from(truth, first))
    assert est.bands[0].precision.value is not None
    assert est.precision.value is None and est.true_calls.value is None
    assert est.note == "no yes/no verdicts yet in score band 2"


def test_a_census_gives_the_exact_precision():
    scores, truth = population(120, [0.3, 0.6, 0.9], seed=4)
    sample = draw_sample(scores, 120, 0, bands=3)
    est = estimate(sample, verdicts_from(truth, sample.indices))
    p = truth.mean()
    assert est.precision == Estimate(p, p, p)
    assert est.true_calls.value == pytest.approx(truth.sum())


def test_verdicts_read_from_a_verified_table(tmp_path):
    """The way the review app gets them: a detection table with a Verified column, read back."""
    scores, truth = population(60, [0.3, 0.8], seed=5)
    sample = draw_sample(scores, 20, 1, bands=2)
    picked = set(sample.indices)

    def verdict(i: int) -> tuple[tuple[str, str], ...]:
        return (("Verified", "yes" if truth[i] else "no"), ("Note", "")) if i in picked else ()

    rows = [
        Selection(i, i + 1.0, 50.0, 250.0, score=float(s), extra=verdict(i))
        for i, s in enumerate(scores)
    ]
    write_table(tmp_path / "rec.wav.selections.txt", rows, scores=True)
    table = read(tmp_path / "rec.wav.selections.txt")
    verdicts = {k: dict(s.extra).get("Verified") for k, s in enumerate(table.selections)}
    est = estimate(sample, verdicts)
    assert est.pending == 0 and est.yes == sum(truth[i] for i in picked)


# (detections, sample, true precision per quartile band): steep, flat with a large sampled
# fraction (the finite-population correction matters), and a nearly pure top and bottom
SCENARIOS = [
    (4000, 100, [0.3, 0.6, 0.85, 0.98]),
    (600, 200, [0.4, 0.5, 0.6, 0.7]),
    (40000, 100, [0.7, 0.9, 0.97, 0.99]),
]


@pytest.mark.parametrize(("size", "n", "precisions"), SCENARIOS)
def test_intervals_cover_the_true_precision_95_percent_of_the_time(size, n, precisions):
    """A fixed archive, 400 seeded samples of it: the overall 95 % interval (and each band's)
    covers the archive's true precision about 95 % of the time (binomial sd of the rate at 400
    draws: 0.011), and the true-calls interval the true number of true detections. Measured
    (overall): 0.949, 0.950, 0.946 at 1000 draws each; each band 0.96-0.99."""
    scores, truth = population(size, precisions, seed=11)
    true_p, true_calls = truth.mean(), truth.sum()
    draws = 400
    overall = calls = 0
    bands = np.zeros(len(precisions))
    band_of = np.asarray(draw_sample(scores, n, 0).band_of)  # the bands depend on the scores only
    band_p = [truth[band_of == h].mean() for h in range(len(precisions))]
    for seed in range(draws):
        sample = draw_sample(scores, n, seed)
        est = estimate(sample, verdicts_from(truth, sample.indices))
        overall += est.precision.low <= true_p <= est.precision.high
        calls += est.true_calls.low <= true_calls <= est.true_calls.high
        for h, row in enumerate(est.bands):
            bands[h] += row.precision.low <= band_p[h] <= row.precision.high
    assert 0.92 <= overall / draws <= 0.98
    assert calls == overall
    assert np.all(bands / draws >= 0.93)  # Clopper-Pearson: at least 95 %, often more
