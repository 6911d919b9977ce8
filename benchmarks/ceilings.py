"""What is possible on the synthetic test sets: the AUC of detectors that know the truth.

Every clip of ``upcall synth`` is regenerated here with :func:`upcall.audio.sounds.described_clip`
(the same draws, the same samples, 16-bit as written) together with what is in it, and scored by

* ``oracle: call present``: 1 if the clip holds an up-call, labelled or missed. Its AUC is the
  label-noise ceiling: ~2 % of the clips labelled 0 hold a call the analyst missed;
* ``oracle: present, then SNR``: the call's band SNR, clips without a call below all others. The
  analyst saw a call with a probability rising with its SNR, so this ranks by that probability;
* ``matched filter, true call``: for a clip with a call, its own direct-path waveform as the
  template (the true contour, phase, harmonics and envelope; echoes and level unknown); for a
  clip without one, a seeded random call of the same generator. Score: the largest correlation
  of the whitened, band-passed clip with the whitened, band-passed template over the onsets the
  generator can draw (at least 60 % of the call inside the clip), normalised by the template's
  energy and the noise level (a z-score per onset). Whitening divides by the clip's own noise
  spectrum (Welch, median of segments, robust to the call itself); the whitened clip is then
  limited to ±1.5 robust sds, so clicks and knocks do not pass for calls. A detector that
  knows the call it is looking for: close to an ideal observer. Chosen on the tuning set (seed
  2000, 3,000 clips, AUC): without the limit 0.981 (a local normalisation instead, with or
  without whitening: within 0.001 of it); limited to 1, 1.5, 2, 3, 4 sds: 0.987, 0.988, 0.988,
  0.987, 0.987.

Printed per set: AUC and whale recall at 90 % precision of each. The held-out set is the test
split of seed 1000 (10,000 clips, as bench_quality.py makes it), the tuning set that of seed 2000
(5,000 clips).

    .venv/bin/python benchmarks/ceilings.py                   # held-out and tuning sets
    .venv/bin/python benchmarks/ceilings.py --sets 1000:10000
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
from scipy.signal import welch

from upcall.audio import sounds, synth
from upcall.metrics import auc

POSITIVE_RATE = 0.234  # `upcall synth`'s default, as bench_quality.py makes its sets
SETS = {"held-out": (1000, 10000), "tuning": (2000, 5000)}  # name -> (seed, clips)
NPERSEG = 256  # Welch segments: 128 ms, 7.8 Hz bins
BAND_FLOOR = 0.01  # band-pass: keep the bins where the whitened template has 1 % of its peak
CLIP_SIGMAS = 1.5  # the whitened clip is limited to this many robust sds (chosen on tuning)


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, precision: float) -> float:
    """The highest whale recall of any threshold whose precision is at least ``precision``
    (a threshold keeps every clip scoring at least it: tied scores go together)."""
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order] == 1)
    kept = np.arange(1, len(order) + 1)
    ends = np.append(scores[order][1:] != scores[order][:-1], True)  # last of each tie group
    ok = (hits / kept >= precision) & ends
    return float(hits[ok].max() / max(1, labels.sum())) if ok.any() else 0.0


@dataclass
class Ceilings:
    """Each detector's scores for one set's clips, and the clips' labels."""

    labels: np.ndarray
    scores: dict[str, np.ndarray]

    def table(self) -> list[tuple[str, float, float]]:
        """(detector, AUC, recall at 90 % precision) of each detector."""
        return [
            (name, auc(s, self.labels == 1), recall_at_precision(s, self.labels, 0.9))
            for name, s in self.scores.items()
        ]


def matched_filter(x: np.ndarray, template: np.ndarray, outside: float) -> float:
    """Largest correlation of ``x`` with ``template`` over onsets with at most ``outside`` of the
    template outside ``x``: both whitened by ``x``'s noise spectrum, the clip limited to
    CLIP_SIGMAS of its noise (a clipper before the correlator: the locally optimal detector in
    impulsive noise), both band-passed to the template's band, normalised by the overlapping
    template's energy and the clip's noise level (about N(0, 1) per onset without a call)."""
    n, m = len(x), len(template)
    size = 1 << int(np.ceil(np.log2(n + m)))
    freqs, psd = welch(x, fs=sounds.RATE, nperseg=NPERSEG, average="median")
    psd = np.maximum(psd, 1e-6 * psd.max())
    white = 1 / np.sqrt(np.interp(np.fft.rfftfreq(size, 1 / sounds.RATE), freqs, psd))
    xw = np.fft.irfft(np.fft.rfft(x, size) * white, size)[:n]
    limit = CLIP_SIGMAS * np.median(np.abs(xw)) / 0.6745  # robust sd of the whitened noise
    xw = np.clip(xw, -limit, limit)  # clicks and knocks: impulsive, not Gaussian
    x_spec, t_spec = np.fft.rfft(xw, size), np.fft.rfft(template, size) * white
    noise = np.std(xw)  # full band: the sd of the correlation per unit template energy
    power = np.abs(t_spec) ** 2
    band = power >= BAND_FLOOR * power.max()
    x_spec, t_spec = x_spec * band, t_spec * band
    tw = np.fft.irfft(t_spec, size)[:m]
    # corr[k] = sum_j xw[j + k] tw[j] (k < 0 wraps around: size >= n + m leaves no overlap)
    corr = np.fft.irfft(x_spec * np.conj(np.fft.rfft(tw, size)), size)
    lags = np.arange(-int(outside * m), n - int(np.ceil((1 - outside) * m)) + 1)
    first, last = np.maximum(0, -lags), np.minimum(m, n - lags)  # template's overlap [first, last)
    t_cum = np.concatenate(([0.0], np.cumsum(tw**2)))
    t_energy = t_cum[last] - t_cum[first]
    return float(np.max(corr[lags % size] / np.sqrt(t_energy + 1e-30)) / noise)


def ceilings(seed: int, n: int, *, difficulty: str = "hard") -> Ceilings:
    """Every detector's scores on the test split of ``upcall synth --seed SEED --n-test N``."""
    d = sounds.get_difficulty(difficulty)
    labels = synth.labels_for(seed, "test", n, POSITIVE_RATE)
    present, snr, mf = np.zeros(n), np.full(n, -np.inf), np.zeros(n)
    for i, y in enumerate(labels):
        x, truth = sounds.described_clip(
            synth.clip_rng(seed, "test", i + 1), int(y), difficulty=difficulty
        )
        x = sounds.to_pcm16(x) / 32768.0  # the samples as written and read back
        if truth.call:
            present[i], snr[i], template = 1.0, truth.snr_db, truth.direct
        else:  # a call this clip does not hold, from the generator, seeded by the clip
            template = sounds.upcall(np.random.default_rng([seed, 2, i + 1]), sounds.RATE, d)[0]
        mf[i] = matched_filter(x, template, d.outside)
    return Ceilings(
        labels,
        {
            "oracle: call present": present,
            "oracle: present, then SNR": np.where(present > 0, snr, -1e9),
            "matched filter, true call": mf,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sets",
        default=",".join(f"{s}:{n}" for s, n in SETS.values()),
        help="SEED:CLIPS,... test splits to score (default: held-out 1000:10000, tuning 2000:5000)",
    )
    args = parser.parse_args()
    print(f"{'set':<14} {'detector':<28} {'AUC':>7} {'rec@P90':>7}")
    for item in args.sets.split(","):
        seed, n = map(int, item.split(":"))
        start = time.perf_counter()
        result = ceilings(seed, n)
        name = f"seed {seed} ({n})"
        for detector, value, recall in result.table():
            print(f"{name:<14} {detector:<28} {value:>7.4f} {recall:>7.3f}", flush=True)
        print(f"({n} clips in {time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
