"""The background of every clip: sea noise, flow noise, ships and transients.

Each level is set relative to the ambient noise near the component's frequency (see
:mod:`upcall.audio.sounds` for the whole signal model):

- Ambient sea noise: Gaussian noise whose spectrum falls as f^-beta (beta 0.2–1.3 per clip,
  between wind-flat and shipping-red, after Wenz), made as a sum of one-pole low-passed noises
  with corners at 10, 100 and 1000 Hz. The filters carry state, so a long recording's noise is
  continuous across blocks.
- Flow noise: rumble below ~15 Hz swelling over seconds, from water moving past a moored buoy.
- Ships: harmonic combs of tonal lines (15–120 Hz fundamentals) whose pitch drifts by Doppler and
  whose level follows the passage (1/distance around the closest approach).
- Transients: clicks, knocks or bursts of broadband interference, 2–200 ms long.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

NOISE_CORNERS_HZ = (10.0, 100.0, 1000.0)
FLOW_LEVEL = (-1.5, -0.3)  # log10 RMS re the ambient RMS (its power sits in 2 of 129 rows)
SHIP_LEVEL = (-0.5, 0.7)  # log10 amplitude re the noise in 50 Hz around the fundamental
TRANSIENT_ENERGY = (0.0, 1.5)  # log10 energy in units of 128 ms (a tutorial frame) of ambient


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


def ship_gain(rng: np.random.Generator, ship: Ship, ambient: Ambient, rate: float) -> float:
    """Amplitude of the ship's tonals at closest approach, drawn relative to the noise there."""
    noise = ambient.band_power(ship.f0 - 25.0, ship.f0 + 25.0, rate)
    return float(np.sqrt(noise) * 10 ** rng.uniform(*SHIP_LEVEL))
