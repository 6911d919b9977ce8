"""Audio transforms for offline augmentation (``upcall augment``): noise, gain, time and
frequency shifts of one clip, with the random draws of each copy made from a seed.

Every transform works on float64 full-scale samples at 2000 Hz and never clips (the spectrogram
reads floats). A copy applies, in this order: time shift, frequency shift, noise, gain, so the
SNR is measured on the shifted clip and the gain scales clip and noise alike, as a recorder's
gain would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from upcall.errors import UpcallError

SAMPLE_RATE = 2000


@dataclass(frozen=True)
class AugmentSettings:
    """What ``upcall augment`` was asked for; lists.json records it (``augmented``)."""

    copies: int = 1  # new versions of each training clip
    seed: int = 0
    snr_db: tuple[float, float] | None = (5.0, 20.0)  # None: no noise mixed in
    gain_db: tuple[float, float] = (-6.0, 6.0)
    shift_s: float = 0.25  # time shift drawn from [-shift_s, shift_s], circular
    freq_shift_hz: float = 10.0  # frequency shift drawn from [-freq_shift_hz, freq_shift_hz]

    def __post_init__(self) -> None:
        if self.copies < 1:
            raise UpcallError(f"--copies must be at least 1, not {self.copies}")
        if self.seed < 0:
            raise UpcallError(f"--seed must be zero or positive, got {self.seed}")
        for name, pair in (("--snr-db", self.snr_db), ("--gain-db", self.gain_db)):
            if pair is not None and not (np.isfinite(pair).all() and pair[0] <= pair[1]):
                raise UpcallError(f"{name} needs finite LO,HI with LO <= HI, got {pair}")
        if not 0 <= self.shift_s < 1.0:
            raise UpcallError(f"--shift-s must be in [0, 1) seconds, not {self.shift_s}")
        if not 0 <= self.freq_shift_hz < 100:
            raise UpcallError(f"--freq-shift-hz must be in [0, 100) Hz, not {self.freq_shift_hz}")


@dataclass(frozen=True)
class CopyParams:
    """The draws for one copy of one clip: what augmented.csv records."""

    snr_db: float | None  # None: no noise
    gain_db: float
    shift_s: float  # positive: later
    freq_shift_hz: float  # positive: higher
    noise: int | None  # index into the noise clips; None: no noise


def draw(settings: AugmentSettings, rng: np.random.Generator, *, noises: int) -> CopyParams:
    """One copy's draws, in a fixed order (so a seed fixes them all); ``noises``: how many
    noise clips to choose from (0: no noise)."""
    lo, hi = settings.snr_db or (0.0, 0.0)
    snr = float(rng.uniform(lo, hi))
    gain = float(rng.uniform(*settings.gain_db))
    shift = float(rng.uniform(-settings.shift_s, settings.shift_s))
    fshift = float(rng.uniform(-settings.freq_shift_hz, settings.freq_shift_hz))
    noise = int(rng.integers(noises)) if noises else 0
    with_noise = settings.snr_db is not None and noises > 0
    return CopyParams(
        snr_db=round(snr, 3) if with_noise else None,
        gain_db=round(gain, 3),
        # whole samples: the CSV says exactly what was done
        shift_s=round(shift * SAMPLE_RATE) / SAMPLE_RATE,
        freq_shift_hz=round(fshift, 3),
        noise=noise if with_noise else None,
    )


def time_shift(x: np.ndarray, seconds: float) -> np.ndarray:
    """Circular shift by ``seconds`` (whole samples). Circular rather than zero-padded: a
    silent strip is something no recording has, while the wrapped background is stationary."""
    return np.roll(x, round(seconds * SAMPLE_RATE))


def frequency_shift(x: np.ndarray, hz: float) -> np.ndarray:
    """Move every component up by ``hz`` (down if negative): the real part of the analytic
    signal times exp(2πi·hz·t). A single-sideband shift, unlike resampling, keeps the clip's
    length and shifts all frequencies by the same Hz (an up-call's sweep keeps its shape).
    Energy pushed below 0 Hz or above 1000 Hz folds back; with shifts of a few Hz that is the
    negligible edge of the band."""
    if hz == 0:
        return x
    t = np.arange(len(x)) / SAMPLE_RATE
    from scipy.signal import hilbert  # slow to import (~0.5 s); only this shift needs it

    return np.real(hilbert(x) * np.exp(2j * np.pi * hz * t))


def power(x: np.ndarray) -> float:
    """Mean square of the samples (full-scale units)."""
    return float(np.mean(np.square(x)))


def mix_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus ``noise`` scaled so that ``10·log10(power(x) / power(scaled noise)) = snr_db``.

    The SNR is relative to the clip's own total power (its call, if any, and the background it
    already has), both powers being mean squares over the whole 2 s. Silent noise adds nothing.
    """
    pn = power(noise)
    if pn == 0:
        return x
    return x + noise * np.sqrt(power(x) / (pn * 10 ** (snr_db / 10)))


def augment(x: np.ndarray, params: CopyParams, noise: np.ndarray | None) -> np.ndarray:
    """One copy of clip ``x`` (float64 full scale) with ``params``; ``noise`` the chosen clip."""
    y = frequency_shift(time_shift(x, params.shift_s), params.freq_shift_hz)
    if params.snr_db is not None and noise is not None:
        y = mix_noise(y, noise, params.snr_db)
    return y * 10 ** (params.gain_db / 20)
