"""The synthetic signal model: sea noise, ships, clicks, hard negatives and up-calls.

The real Kaggle clips cannot be shipped (Cornell licence), so we synthesise clips with the same
format (2 s, 2000 Hz, 16-bit mono AIFF) and the same kind of difficulty. Each clip is a sum of
independent components; every level is set relative to the ambient noise near the component's
frequency, so "faint" means faint against the noise actually there:

- Ambient sea noise: Gaussian noise whose spectrum falls as f^-beta (beta 0.2–1.3 per clip,
  between wind-flat and shipping-red, after Wenz), made as a sum of one-pole low-passed noises
  with corners at 10, 100 and 1000 Hz. The filters carry state, so a long recording's noise is
  continuous across blocks.
- Flow noise (25 % of clips): rumble below ~15 Hz swelling over seconds, from water moving past
  a moored buoy. Its power sits in two spectrogram rows, so in the linear-power tutorial image it
  often owns the brightest pixels and pushes everything else towards 0.
- Ships (30 %): harmonic combs of tonal lines (15–120 Hz fundamentals) whose pitch drifts by
  Doppler and whose level follows the passage (1/distance around the closest approach).
- Transients (30 %): 1–6 clicks, knocks or bursts of broadband interference, 2–200 ms long, each
  with the energy of 1–30 frames (128 ms) of the ambient noise: bright vertical bars.
- Hard negatives (70 % of negatives, 20 % of positives, so their presence says little): tonal
  sounds with the call's band or its shape but not both — down-sweeps, flat moans, up-sweeps too
  short (< 0.3 s) or above the band (300+ Hz), humpback-like units (arched or wavering contours
  with harmonics) — at the calls' own SNRs. They are what defeats a pixel-wise linear model.
- The up-call (positives): a J-shaped up-sweep, f(u) = f0 + (f1 - f0)·u^curve, from 50–110 Hz
  rising 40–140 Hz (capped at 250 Hz) over 0.5–1.5 s, raised-cosine envelope with random rise and
  fall, 0–2 weaker harmonics, starting anywhere (sometimes cut by the clip's edge). Its band SNR
  (call power over the noise power in 50 Hz around it) is drawn from 6 to 25 dB: the faint end
  is barely visible in the tutorial image, more so beside a ship, flow noise or a loud click.
- Level: the mixture is scaled to a peak drawn log-uniformly from 0.01 to 1.0 of full scale,
  independently of the label (the real clips are not level-normalised).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

RATE = 2000  # Hz, the Kaggle clips' rate
CLIP_SECONDS = 2.0
GENERATOR_VERSION = 1  # bump when the signal model changes, so old OUT dirs refuse to resume
NOISE_CORNERS_HZ = (10.0, 100.0, 1000.0)
CALL_SNR_DB = (6.0, 25.0)  # band SNR of the up-call, uniform in dB
P_FLOW, P_SHIP, P_CLICKS = 0.25, 0.3, 0.3
FLOW_LEVEL = (-1.5, -0.3)  # log10 RMS re the ambient RMS (its power sits in 2 of 129 rows)
SHIP_LEVEL = (-0.5, 0.7)  # log10 amplitude re the noise in 50 Hz around the fundamental
TRANSIENT_ENERGY = (0.0, 1.5)  # log10 energy in units of 128 ms (a tutorial frame) of ambient
P_CONFOUNDER = {0: 0.7, 1: 0.2}  # by label: hard negatives, and some in positives too
PEAK_RANGE = (0.01, 1.0)  # fraction of full scale, log-uniform


# --- signal components ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ambient:
    """Coloured Gaussian sea noise: one-pole low-passed noises at NOISE_CORNERS_HZ, summed."""

    gains: tuple[float, ...]  # amplitude of each corner's component

    @classmethod
    def random(cls, rng: np.random.Generator) -> Ambient:
        # PSD ~ f^-beta: a Lorentzian at each corner c, weighted c^-beta, gives that slope
        beta = rng.uniform(0.2, 1.3)
        jitter = 10 ** rng.uniform(-0.3, 0.3, len(NOISE_CORNERS_HZ))
        weights = np.array(NOISE_CORNERS_HZ) ** -beta * jitter
        return cls(tuple(float(g) for g in np.sqrt(weights / weights.sum())))

    def poles(self, rate: float) -> np.ndarray:
        return np.exp(-2 * np.pi * np.array(NOISE_CORNERS_HZ) / rate)

    def render(
        self, rng: np.random.Generator, n: int, rate: float, zi: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples and the filter state to continue with; ``zi=None`` starts in steady state."""
        out = np.zeros(n)
        zf = np.zeros(len(self.gains))
        warm = 0 if zi is not None else int(0.25 * rate)  # drop the filters' start-up transient
        white = rng.standard_normal((len(self.gains), n + warm))
        for k, (g, a) in enumerate(zip(self.gains, self.poles(rate), strict=True)):
            z0 = np.zeros(1) if zi is None else zi[k : k + 1]
            y, z = lfilter([1 - a], [1, -a], white[k], zi=z0)  # unit gain at DC
            out += g * y[warm:]
            zf[k] = z[0]
        return out, zf

    def band_power(self, lo: float, hi: float, rate: float) -> float:
        """Expected power of :meth:`render`'s output between ``lo`` and ``hi`` Hz."""
        f = np.linspace(max(lo, 0.0), min(hi, rate / 2), 33)
        w = 2 * np.pi * f[:, None] / rate
        a = self.poles(rate)[None, :]
        h2 = (1 - a) ** 2 / (1 - 2 * a * np.cos(w) + a**2)
        psd = (h2 * np.square(self.gains)).sum(axis=1) * 2 / rate  # one-sided, per Hz
        return float(np.trapezoid(psd, f))


def tone(
    rng: np.random.Generator, freq: np.ndarray, rate: float, harmonics: Sequence[float] = ()
) -> np.ndarray:
    """A unit-amplitude tonal following ``freq`` (one value in Hz per sample), with harmonics."""
    phase = 2 * np.pi * np.cumsum(freq) / rate + rng.uniform(0, 2 * np.pi)
    out = np.sin(phase)
    for k, amp in enumerate(harmonics, start=2):
        if k * freq.max() < 0.45 * rate:  # drop what would alias
            out += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return out * envelope(rng, len(freq))


def envelope(rng: np.random.Generator, n: int) -> np.ndarray:
    """Smooth on/off: raised-cosine rise and fall over random fractions of the sound."""
    u = np.linspace(0.0, 1.0, n)
    ramp = np.minimum(1.0, np.minimum(u / rng.uniform(0.1, 0.45), (1 - u) / rng.uniform(0.1, 0.45)))
    return np.sin(0.5 * np.pi * ramp) ** 2


def _harmonics(rng: np.random.Generator, most: int) -> np.ndarray:
    count = rng.integers(0, most + 1)
    return rng.uniform(0.05, 0.4, count) * 0.6 ** np.arange(count)


def upcall(rng: np.random.Generator, rate: float) -> tuple[np.ndarray, float, float]:
    """One up-call at unit amplitude, and its (low, high) fundamental frequency in Hz."""
    duration = rng.uniform(0.5, 1.5)
    f0 = rng.uniform(50.0, 110.0)
    f1 = min(f0 + rng.uniform(40.0, 140.0), 250.0)
    u = np.linspace(0.0, 1.0, int(duration * rate))
    freq = f0 + (f1 - f0) * u ** rng.uniform(1.0, 2.2)  # slow start, then rising: J-shaped
    return tone(rng, freq, rate, _harmonics(rng, 2)), f0, f1


CONFOUNDERS = ("downsweep", "moan", "short", "high", "humpback")


def confounder(rng: np.random.Generator, rate: float) -> np.ndarray:
    """A hard negative at unit amplitude: call-like in band or in shape, but not both."""
    kind = CONFOUNDERS[rng.integers(len(CONFOUNDERS))]
    duration = {"short": rng.uniform(0.08, 0.3), "moan": rng.uniform(0.5, 2.0)}.get(
        kind, rng.uniform(0.4, 1.5)
    )
    u = np.linspace(0.0, 1.0, max(int(duration * rate), 8))
    if kind == "downsweep":
        f0 = rng.uniform(130.0, 250.0)
        freq = f0 - rng.uniform(40.0, min(140.0, f0 - 40.0)) * u ** rng.uniform(0.5, 2.0)
    elif kind == "moan":
        freq = rng.uniform(60.0, 220.0) * (1 + rng.uniform(-0.03, 0.03) * u)
    elif kind == "short":
        f0 = rng.uniform(50.0, 120.0)
        freq = f0 + rng.uniform(40.0, 140.0) * u ** rng.uniform(1.0, 2.2)
    elif kind == "high":
        f0 = rng.uniform(300.0, 550.0)
        freq = np.minimum(f0 + rng.uniform(50.0, 250.0) * u**1.5, 0.45 * rate)
    else:  # humpback-like: arches, U-shapes and wavering contours with several harmonics
        depth, cycles = rng.uniform(10.0, 80.0), rng.uniform(0.5, 2.0)
        freq = rng.uniform(90.0, 400.0) + depth * np.sin(
            2 * np.pi * cycles * u + rng.uniform(0, 6.3)
        )
    return tone(rng, freq, rate, _harmonics(rng, 3))


def transient(rng: np.random.Generator, rate: float, noise_rms: float) -> np.ndarray:
    """A click, knock or burst of broadband interference (2–200 ms), energy set vs the noise."""
    n = max(int(np.exp(rng.uniform(np.log(0.002), np.log(0.2))) * rate), 2)
    burst = rng.standard_normal(n) * np.exp(-np.arange(n) / (n * rng.uniform(0.15, 1.0)))
    energy = 10 ** rng.uniform(*TRANSIENT_ENERGY) * 0.128 * rate * noise_rms**2
    return burst * np.sqrt(energy / np.sum(burst**2))


def flow(rng: np.random.Generator, n: int, rate: float, noise_rms: float) -> np.ndarray:
    """Low-frequency flow rumble (< ~15 Hz) swelling and fading over seconds."""
    a = np.exp(-2 * np.pi * rng.uniform(3.0, 15.0) / rate)
    warm = int(0.5 * rate)
    y = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], rng.standard_normal(n + warm)))[warm:]
    t = np.arange(n) / rate
    y *= 1 + 0.8 * np.sin(2 * np.pi * t / rng.uniform(1.0, 8.0) + rng.uniform(0, 6.3))
    return y * noise_rms * 10 ** rng.uniform(*FLOW_LEVEL) / np.sqrt(np.mean(y**2))


@dataclass(frozen=True)
class Ship:
    """A passing ship's tonal comb; the level follows 1/distance, the pitch follows Doppler."""

    f0: float  # fundamental (blade rate or engine firing rate), Hz
    amps: tuple[float, ...]  # amplitude of each harmonic at closest approach
    phases: tuple[float, ...]
    closest_s: float  # time of closest approach
    scale_s: float  # passage time scale: distance at closest approach over speed
    doppler: float  # fractional frequency shift far away (falls from +d to -d)

    @classmethod
    def random(cls, rng: np.random.Generator, *, closest_s: float, scale_s: float) -> Ship:
        count = rng.integers(1, 7)
        return cls(
            rng.uniform(15.0, 120.0),
            tuple(10 ** rng.uniform(-1, 0, count)),
            tuple(rng.uniform(0, 2 * np.pi, count)),
            closest_s,
            scale_s,
            rng.uniform(0.0, 0.02),
        )

    def render(self, t: np.ndarray, rate: float) -> np.ndarray:
        """The ship's tonals at absolute times ``t`` (s); analytic phase, so blocks join."""
        x = (t - self.closest_s) / self.scale_s
        logcosh = np.abs(x) + np.log1p(np.exp(-2 * np.abs(x))) - np.log(2)
        phase = 2 * np.pi * self.f0 * (t - self.doppler * self.scale_s * logcosh)
        out = np.zeros_like(t)
        for k, (amp, ph) in enumerate(zip(self.amps, self.phases, strict=True), start=1):
            if k * self.f0 < 0.45 * rate:
                out += amp * np.sin(k * phase + ph)
        return out / np.sqrt(1 + x**2)


def add_at(out: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Add ``sound`` into ``out`` beginning at sample ``start`` (either may overhang the other)."""
    lo, hi = max(start, 0), min(start + len(sound), len(out))
    if hi > lo:
        out[lo:hi] += sound[lo - start : hi - start]


def call_gain(
    rng: np.random.Generator, ambient: Ambient, lo: float, hi: float, rate: float
) -> float:
    """Amplitude for a unit tonal so that its band SNR (vs noise in 50 Hz around it) is drawn."""
    centre = 0.5 * (lo + hi)
    noise = ambient.band_power(centre - 25.0, centre + 25.0, rate)
    snr = 10 ** (rng.uniform(*CALL_SNR_DB) / 10)
    return float(np.sqrt(2 * snr * noise))  # a sine of amplitude A has power A²/2


def ship_gain(rng: np.random.Generator, ship: Ship, ambient: Ambient, rate: float) -> float:
    """Amplitude of the ship's tonals at closest approach, drawn relative to the noise there."""
    noise = ambient.band_power(ship.f0 - 25.0, ship.f0 + 25.0, rate)
    return float(np.sqrt(noise) * 10 ** rng.uniform(*SHIP_LEVEL))


# --- one clip ---------------------------------------------------------------------------------


def clip(
    rng: np.random.Generator, label: int, *, rate: float = RATE, seconds: float = CLIP_SECONDS
) -> np.ndarray:
    """One clip as floats in [-1, 1] (peak at a random level); an up-call in it iff ``label``."""
    n = round(rate * seconds)
    ambient = Ambient.random(rng)
    x, _ = ambient.render(rng, n, rate)
    noise_rms = np.sqrt(ambient.band_power(0.0, rate / 2, rate))
    if rng.random() < P_FLOW:
        x += flow(rng, n, rate, noise_rms)
    if rng.random() < P_SHIP:
        ship = Ship.random(rng, closest_s=rng.uniform(-60, 60), scale_s=rng.uniform(30, 300))
        x += ship.render(np.arange(n) / rate, rate) * ship_gain(rng, ship, ambient, rate)
    if rng.random() < P_CLICKS:
        for _ in range(rng.integers(1, 7)):
            add_at(x, transient(rng, rate, noise_rms), int(rng.uniform(-0.1, seconds) * rate))
    if rng.random() < P_CONFOUNDER[label]:
        sound = confounder(rng, rate)
        sound *= call_gain(rng, ambient, 50.0, 250.0, rate)
        add_at(x, sound, int(rng.uniform(-0.2, seconds - 0.8 * len(sound) / rate) * rate))
    if label:
        sound, lo, hi = upcall(rng, rate)
        sound *= call_gain(rng, ambient, lo, hi, rate)
        duration = len(sound) / rate
        add_at(x, sound, int(rng.uniform(-0.15 * duration, seconds - 0.85 * duration) * rate))
    peak = np.exp(rng.uniform(*np.log(PEAK_RANGE)))
    return x * (peak / np.abs(x).max())


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
