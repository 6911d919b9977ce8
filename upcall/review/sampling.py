"""How many detections are true, from a verified sample: a stratified random sample by score band
and its estimates (precision per band and overall with 95 % intervals, true up-calls in all).

The detections are split into score bands (quantile bands of the score by default, or fixed
edges); each band gets an equal share of the sample (a band smaller than its share is taken
whole, the rest goes to the others), drawn without replacement with a seeded generator. Equal
shares give every band, low scores included, a usable estimate of its own; the overall figure
weights each band by its size (the stratified estimator).

Intervals (95 %):

- per band: the Clopper–Pearson interval with the finite-population correction (the band's
  size N, its verdicts n: at the effective size n (N - 1) / (N - n)); a band verified whole has
  its exact precision, a zero-width interval. Not Wilson's: bands near precision 1, where a good
  detector's top band lies, are where Wilson's coverage dips (0.90 measured at p = 0.98, n = 25).
- overall: the stratified proportion sum(W_h p_h), W_h = N_h / N, with the variance
  sum(W_h² (N_h - n_h) / (N_h - 1) p~_h (1 - p~_h) / n_h), where p~_h is the band's Wilson
  centre (x + z²/2) / (n + z²) so that a band whose verdicts are all yes (or all no) still adds
  its share of doubt; the interval is Wilson's at the effective sample size
  p~ (1 - p~) / variance (as Korn and Graubard's effective-size method, with p~ = sum(W_h p~_h)).
  Its coverage is demonstrated on simulated verdicts in tests/review/test_sampling.py.
- true up-calls among all detections: N times the overall precision and its interval (detections
  only: calls the detector missed are not counted).

``unsure`` verdicts are left out (as if those rows had not been sampled: assumed like the
others of their band) and counted; sampled rows without a verdict yet are counted as pending.
Review the sample in :attr:`Sample.indices`' order (random, bands mixed): a review stopped
halfway is then still a random sample of every band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, norm

from upcall.errors import UpcallError

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval
VERDICTS = ("yes", "no", "unsure")
DEFAULT_BANDS = 4
METHOD = (
    "stratified random sample, equal shares per score band; per band Clopper-Pearson 95 % "
    "intervals with the finite-population correction; overall the size-weighted stratified "
    "estimator with a Wilson interval at the effective sample size; unsure verdicts excluded"
)


@dataclass(frozen=True)
class Band:
    """Scores ``low <= score < high`` (the top band includes ``high``); ``size`` detections."""

    low: float
    high: float
    size: int


@dataclass(frozen=True)
class Sample:
    """A stratified sample of detections 0 .. len(band_of) - 1 (positions in the score list)."""

    bands: tuple[Band, ...]
    band_of: tuple[int, ...]  # each detection's band (an index into bands)
    indices: tuple[int, ...]  # the sampled detections, in review order (random, bands mixed)
    seed: int

    @property
    def detections(self) -> int:
        return len(self.band_of)

    def shares(self) -> tuple[int, ...]:
        """Sampled detections per band."""
        counts = [0] * len(self.bands)
        for i in self.indices:
            counts[self.band_of[i]] += 1
        return tuple(counts)


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its 95 % interval; all None when nothing is known yet."""

    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class BandEstimate:
    band: Band
    sampled: int
    yes: int
    no: int
    unsure: int  # left out of the estimate
    pending: int  # sampled, no verdict yet
    precision: Estimate


@dataclass(frozen=True)
class Estimates:
    bands: tuple[BandEstimate, ...]
    precision: Estimate  # overall, stratified
    true_calls: Estimate  # true up-calls among all detections
    detections: int
    sampled: int
    yes: int
    no: int
    unsure: int
    pending: int
    note: str  # why the overall figures are missing, or "" when they are there
    method: str = METHOD


def _band_edges(scores: np.ndarray, bands: int | Sequence[float]) -> np.ndarray:
    """The inner edges: quantiles for a number of bands (ties merged), else the given edges."""
    if isinstance(bands, int | np.integer):
        if bands < 1:
            raise UpcallError(f"the number of score bands must be at least 1, got {bands}")
        if len(scores) == 0:
            return np.zeros(0)
        edges = np.quantile(scores, np.arange(1, bands) / bands)
        return np.unique(edges[edges > scores.min()])
    edges = np.asarray(bands, dtype=float)
    if edges.ndim != 1 or not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise UpcallError(f"score band edges must be finite and increasing, got {list(bands)}")
    return edges


def _shares(sizes: Sequence[int], n: int) -> list[int]:
    """Equal shares of ``n`` over bands of ``sizes``; a small band is taken whole and its unused
    share goes to the others (the leftover of an uneven split to the highest bands first)."""
    shares = [0] * len(sizes)
    left = min(n, sum(sizes))
    while left > 0:
        open_ = [h for h in range(len(sizes)) if shares[h] < sizes[h]]
        each = left // len(open_)
        if each == 0:
            for h in sorted(open_, reverse=True)[:left]:
                shares[h] += 1
            break
        for h in open_:
            add = min(each, sizes[h] - shares[h])
            shares[h] += add
            left -= add
    return shares


def draw_sample(
    scores: Sequence[float] | np.ndarray,
    n: int,
    seed: int,
    *,
    bands: int | Sequence[float] = DEFAULT_BANDS,
) -> Sample:
    """A stratified random sample of ``n`` of the detections with these ``scores``.

    Parameters
    ----------
    scores : the detections' scores; a detection is known by its position here.
    n : the sample size (all detections when there are fewer).
    seed : the random generator's seed (the same seed, scores and bands give the same sample).
    bands : a number of quantile bands of the score (at most ``n``), or the inner band edges
        (increasing).
    """
    values = np.asarray(scores, dtype=float)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise UpcallError("detection scores must be a list of finite numbers")
    if n < 0 or seed < 0:
        raise UpcallError(f"the sample size and seed must be zero or positive, got {n}, {seed}")
    if isinstance(bands, int | np.integer):
        bands = min(bands, max(n, 1))  # a band without a sampled detection has no estimate
    edges = _band_edges(values, bands)
    raw = np.searchsorted(edges, values, side="right")  # band h: edges[h-1] <= score < edges[h]
    bounds = [-math.inf, *edges.tolist(), math.inf]
    used = [h for h in range(len(bounds) - 1) if np.any(raw == h)]  # empty bands dropped
    renumber = np.zeros(len(bounds) - 1, dtype=int)
    renumber[used] = np.arange(len(used))
    band_of = renumber[raw]
    members = [np.flatnonzero(band_of == k) for k in range(len(used))]
    table = tuple(
        Band(
            low=float(values[m].min()) if k == 0 else float(bounds[h]),
            high=float(values[m].max()) if k == len(used) - 1 else float(bounds[h + 1]),
            size=len(m),
        )
        for k, (h, m) in enumerate(zip(used, members, strict=True))
    )
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(m, size=share, replace=False)
        for m, share in zip(members, _shares([len(m) for m in members], n), strict=True)
    ]
    picked = np.concatenate(chosen) if chosen else np.zeros(0, dtype=int)
    order = rng.permutation(picked)
    return Sample(table, tuple(band_of.tolist()), tuple(int(i) for i in order), seed)


def clopper_pearson(yes: int, n: int, size: int | None = None, z: float = Z95) -> Estimate:
    """The Clopper–Pearson ("exact") interval for ``yes`` of ``n``, drawn without replacement
    from ``size`` (None: an unlimited population): at the effective size n (N - 1) / (N - n)."""
    if n == 0:
        return Estimate(None, None, None)
    p = yes / n
    if size is not None and n >= size:
        return Estimate(p, p, p)  # the whole band: known exactly
    eff = n if size is None or size <= 1 else n * (size - 1) / (size - n)
    x, tail = p * eff, norm.sf(z)  # tail: 0.025 for z = 1.96
    low = 0.0 if yes == 0 else float(beta.ppf(tail, x, eff - x + 1))
    high = 1.0 if yes == n else float(beta.ppf(1 - tail, x + 1, eff - x))
    return Estimate(p, low, high)


def _wilson_at(p: float, eff: float, z: float) -> Estimate:
    """Wilson's interval around ``p`` at the (effective) sample size ``eff``."""
    if math.isinf(eff):
        return Estimate(p, p, p)
    k = z * z / eff
    centre = (p + k / 2) / (1 + k)
    half = z / (1 + k) * math.sqrt(p * (1 - p) / eff + k / (4 * eff))
    # exactly 0 / 1 at the ends (rounding would leave 1e-17 outside)
    low = 0.0 if p == 0.0 else max(0.0, centre - half)
    high = 1.0 if p == 1.0 else min(1.0, centre + half)
    return Estimate(p, low, high)


def _overall(rows: Sequence[BandEstimate], z: float) -> Estimate:
    """The stratified precision and its interval (see the module docstring)."""
    total = sum(r.band.size for r in rows)
    point = smooth = var = 0.0
    for r in rows:
        n, size, w = r.yes + r.no, r.band.size, r.band.size / total
        tilde = (r.yes + z * z / 2) / (n + z * z)
        point += w * r.yes / n
        smooth += w * tilde
        if n < size:
            var += w * w * (size - n) / (size - 1) * tilde * (1 - tilde) / n
    if var == 0.0:
        return Estimate(point, point, point)  # every band verified whole
    return _wilson_at(point, smooth * (1 - smooth) / var, z)


def _parse(value: object, index: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == "":
        return None
    if text not in VERDICTS:
        raise UpcallError(
            f"detection {index}: verdict must be one of {', '.join(VERDICTS)}, got {value!r}"
        )
    return text


def estimate(sample: Sample, verdicts: Mapping[int, object], *, z: float = Z95) -> Estimates:
    """Precision per band and overall, and the true up-calls among all detections.

    ``verdicts`` maps a detection's position (as in :func:`draw_sample`'s scores) to ``yes``,
    ``no`` or ``unsure`` (any case; None or "" = not yet verified). Verdicts of detections
    outside the sample are ignored: they were not drawn at random.
    """
    counts = [dict.fromkeys((*VERDICTS, None), 0) for _ in sample.bands]
    for i in sample.indices:
        counts[sample.band_of[i]][_parse(verdicts.get(i), i)] += 1
    rows = tuple(
        BandEstimate(
            band,
            sampled=sum(c.values()),
            yes=c["yes"],
            no=c["no"],
            unsure=c["unsure"],
            pending=c[None],
            precision=clopper_pearson(c["yes"], c["yes"] + c["no"], band.size, z),
        )
        for band, c in zip(sample.bands, counts, strict=True)
    )
    waiting = [k + 1 for k, r in enumerate(rows) if r.yes + r.no == 0]
    empty = [k + 1 for k, r in enumerate(rows) if r.sampled == 0]
    none = Estimate(None, None, None)
    if not rows:
        overall, calls, note = none, none, "no detections"
    elif empty:
        overall, calls = none, none
        note = f"no sampled detections in score band {', '.join(map(str, empty))}"
    elif waiting:
        overall, calls = none, none
        note = f"no yes/no verdicts yet in score band {', '.join(map(str, waiting))}"
    else:
        overall, note = _overall(rows, z), ""
        n = sample.detections
        calls = Estimate(overall.value * n, overall.low * n, overall.high * n)
    return Estimates(
        bands=rows,
        precision=overall,
        true_calls=calls,
        detections=sample.detections,
        sampled=len(sample.indices),
        yes=sum(r.yes for r in rows),
        no=sum(r.no for r in rows),
        unsure=sum(r.unsure for r in rows),
        pending=sum(r.pending for r in rows),
        note=note,
    )
