"""The synthetic signal model: up-calls as a moored buoy receives them, among hard negatives.

The real Kaggle clips cannot be shipped (Cornell licence), so we synthesise clips with the same
format (2 s, 2000 Hz, 16-bit mono AIFF) and the same kind of difficulty. Each clip is a sum of
independent components; every level is set relative to the ambient noise near the component's
frequency, so "faint" means faint against the noise actually there. The background (ambient
sea noise after Wenz, flow noise in 25 % of clips, ships in 30 %, clicks and knocks in 30 %) is
in :mod:`upcall.audio.noise`. On top of it:

- Hard negatives: tonal sounds with the call's band or its shape but not both — down-sweeps,
  flat moans, up-sweeps too short (< 0.3 s) or above the band (300+ Hz), humpback-like units
  (arched or wavering contours with harmonics) — in negatives and, less often, in positives, so
  their presence says little; at the calls' own SNRs, so loudness says nothing either.
- The up-call (positives): an up-sweep f(u) = f0 + (f1 - f0)·u^c from 50–110 Hz rising 40–140 Hz
  (capped at 250 Hz) over 0.5–1.5 s, raised-cosine envelope with random rise and fall, 0–2
  weaker harmonics. Band SNR is the call's power over the noise power in 50 Hz around it.
- Level: the mixture is scaled to a peak drawn log-uniformly from 0.01 to 1.0 of full scale,
  independently of the label (the real clips are not level-normalised).

Two difficulties (:data:`DIFFICULTIES`). ``hard`` is the default, calibrated so that a fixed
classical reference (``benchmarks/reference_hgb.py``: gradient boosting on a normalised log
spectrogram) scores AUC ≈ 0.91 with 6,000 training clips and ≈ 0.93 with 30,000, near what
template matching + boosting scores on the real Cornell buoy data (0.935):

- ``easy`` (generator 1's clips, bit for bit): J-shaped sweeps only (c 1–2.2), band SNR uniform
  in 6–25 dB, at least 85 % of the call inside the clip, harmonics 0.05–0.4, hard negatives in
  70 % of negatives and 20 % of positives.
- ``hard``: band SNR from a range model. Whales are spread uniformly over the area around the
  buoy out to 25 km, so distant (faint) calls outnumber near ones; the received level falls by
  15·log10(range) (between cylindrical and spherical spreading, as in shallow water) with a
  5 dB spread of source level: a mixture over range whose median is 2 dB. A call is labelled 1
  only if the analyst saw it, with a logistic probability of its SNR (50 % at 6 dB, scale 3 dB:
  analysts are inconsistent), so labelled calls reach well below 0 dB (about 6 % of them; the
  faintest near -8 dB) while most calls that faint are missed. A missed call is label noise: 2 %
  of the clips labelled 0 hold one (Kaggle's labels are analysts' marks). Calls may be cut by
  the clip's edge (at least 60 % inside). Multipath: in shallow water (Cape Cod Bay, 30–60 m)
  surface- and bottom-reflected arrivals follow the direct one; 60 % of calls get 1–3 echoes
  10–120 ms later at 0.2–0.6 of its amplitude, some inverted (odd surface bounces), smearing the
  contour. Contours vary: accelerating (J-shaped, c > 1) and decelerating (c < 1) sweeps, a
  small initial dip (3–12 Hz) in a third of the calls, weaker harmonics (0.02–0.2). The sea is
  busier: hard negatives in 90 % of negatives and 50 % of positives.

:func:`described_clip` makes the same clip from the same draws and says what is in it (the
call, its band SNR, onset and direct-path waveform, a missed call, the hard negative): the
truth that ``benchmarks/ceilings.py`` scores oracles and a matched filter with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from upcall.audio.noise import Ambient, Ship, flow, ship_gain, transient

RATE = 2000  # Hz, the Kaggle clips' rate
CLIP_SECONDS = 2.0
GENERATOR_VERSION = 2  # bump when the signal model changes, so old OUT dirs refuse to resume
P_FLOW, P_SHIP, P_CLICKS = 0.25, 0.3, 0.3
PEAK_RANGE = (0.01, 1.0)  # fraction of full scale, log-uniform
# The range model of the hard difficulty (see the module docstring)
RANGE_KM = (0.5, 25.0)  # whales uniform over the annulus: range² uniform
SPREADING_DB = 15.0  # transmission loss per decade of range: shallow-water spreading
SOURCE_SD_DB = 5.0  # call-to-call spread of source level
SEEN_WIDTH_DB = 3.0  # logistic scale of the analyst's probability of seeing a call


@dataclass(frozen=True)
class Difficulty:
    """How faint, cut, smeared and varied the up-calls are, and how often a label is wrong."""

    name: str
    snr_db: tuple[float, float] | None  # band SNR uniform in this range; None: the range model
    snr_1km_db: float  # range model: median band SNR of a call from 1 km
    seen_snr_db: float  # range model: band SNR the analyst sees half the time
    outside: float  # the most of a call's duration that may lie outside the clip
    curve: tuple[float, float]  # exponent c of the sweep: > 1 accelerating, < 1 decelerating
    p_dip: float  # fraction of calls starting with a small dip
    harmonic_amp: tuple[float, float]  # amplitude of the 2nd harmonic re the fundamental
    p_echo: float  # fraction of calls with multipath echoes
    p_missed: float  # fraction of label-0 clips with a call the analyst missed
    p_confounder: tuple[float, float]  # fraction of clips with a hard negative, by label 0, 1

    def call_snr_db(self, rng: np.random.Generator) -> float:
        """Band SNR of a labelled call (and of a hard negative: as visible as the calls)."""
        if self.snr_db is not None:
            return rng.uniform(*self.snr_db)
        while True:  # the calls the analyst saw, among all that reached the buoy
            snr = self._received_snr_db(rng)
            if rng.random() < self._p_seen(snr):
                return snr

    def missed_snr_db(self, rng: np.random.Generator) -> float:
        """Band SNR of a call the analyst missed (label noise)."""
        while True:
            snr = self._received_snr_db(rng)
            if rng.random() >= self._p_seen(snr):
                return snr

    def _received_snr_db(self, rng: np.random.Generator) -> float:
        lo, hi = RANGE_KM
        km = np.sqrt(rng.uniform(lo**2, hi**2))
        return self.snr_1km_db - SPREADING_DB * np.log10(km) + rng.normal(0.0, SOURCE_SD_DB)

    def _p_seen(self, snr: float) -> float:
        return 1.0 / (1.0 + np.exp(-(snr - self.seen_snr_db) / SEEN_WIDTH_DB))


DIFFICULTIES = {
    "easy": Difficulty(
        "easy",
        snr_db=(6.0, 25.0),
        snr_1km_db=0.0,  # unused: SNR uniform
        seen_snr_db=0.0,
        outside=0.15,
        curve=(1.0, 2.2),
        p_dip=0.0,
        harmonic_amp=(0.05, 0.4),
        p_echo=0.0,
        p_missed=0.0,
        p_confounder=(0.7, 0.2),
    ),
    "hard": Difficulty(
        "hard",
        snr_db=None,
        snr_1km_db=20.0,  # with RANGE_KM and SPREADING_DB: received SNR 2 ± 6 dB (median, sd)
        seen_snr_db=6.0,  # calibrated: the reference's AUC at 6,000 and 30,000 clips
        outside=0.4,
        curve=(0.4, 3.0),
        p_dip=0.33,
        harmonic_amp=(0.02, 0.2),
        p_echo=0.6,
        p_missed=0.02,
        p_confounder=(0.9, 0.5),
    ),
}


def get_difficulty(difficulty: Difficulty | str) -> Difficulty:
    """``difficulty`` itself, or the preset of that name; ValueError naming the choices."""
    if isinstance(difficulty, Difficulty):
        return difficulty
    try:
        return DIFFICULTIES[difficulty]
    except KeyError:
        raise ValueError(
            f"unknown difficulty {difficulty!r} (choose from {', '.join(DIFFICULTIES)})"
        ) from None


# --- tonal sounds -----------------------------------------------------------------------------


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


def _harmonics(
    rng: np.random.Generator, most: int, amp: tuple[float, float] = (0.05, 0.4)
) -> np.ndarray:
    count = rng.integers(0, most + 1)
    return rng.uniform(*amp, count) * 0.6 ** np.arange(count)


def upcall(
    rng: np.random.Generator, rate: float, difficulty: Difficulty | str = "hard"
) -> tuple[np.ndarray, float, float]:
    """One up-call at unit amplitude, and its (low, high) fundamental frequency in Hz."""
    d = get_difficulty(difficulty)
    duration = rng.uniform(0.5, 1.5)
    f0 = rng.uniform(50.0, 110.0)
    f1 = min(f0 + rng.uniform(40.0, 140.0), 250.0)
    u = np.linspace(0.0, 1.0, int(duration * rate))
    freq = f0 + (f1 - f0) * u ** rng.uniform(*d.curve)
    lo = f0
    if d.p_dip and rng.random() < d.p_dip:  # a brief fall before the rise
        depth, width = rng.uniform(3.0, 12.0), rng.uniform(0.08, 0.25)
        freq = freq - depth * np.sin(np.pi * np.minimum(u / width, 1.0))
        lo = float(freq.min())
    return tone(rng, freq, rate, _harmonics(rng, 2, d.harmonic_amp)), lo, f1


def multipath(rng: np.random.Generator, sound: np.ndarray, rate: float) -> np.ndarray:
    """``sound`` followed by 1–3 weaker, delayed reflections (odd surface bounces inverted)."""
    count = rng.integers(1, 4)
    delays = np.round(rng.uniform(0.01, 0.12, count) * rate).astype(int)
    gains = rng.uniform(0.2, 0.6, count) * rng.choice([-1.0, 1.0], count)
    out = np.zeros(len(sound) + delays.max())
    out[: len(sound)] = sound
    for delay, gain in zip(delays, gains, strict=True):
        out[delay : delay + len(sound)] += gain * sound
    return out


def received_call(
    rng: np.random.Generator,
    ambient: Ambient,
    rate: float,
    difficulty: Difficulty | str,
    *,
    missed: bool = False,
) -> tuple[np.ndarray, float, float, int]:
    """An up-call as the buoy hears it: (samples, low Hz, high Hz, direct-path samples)."""
    sound, lo, hi, direct, _ = described_call(rng, ambient, rate, difficulty, missed=missed)
    return sound, lo, hi, len(direct)


def described_call(
    rng: np.random.Generator,
    ambient: Ambient,
    rate: float,
    difficulty: Difficulty | str,
    *,
    missed: bool = False,
) -> tuple[np.ndarray, float, float, np.ndarray, float]:
    """:func:`received_call` (the same draws) with the direct-path call itself (at the level
    received, before any echoes) instead of its length, and its band SNR in dB."""
    d = get_difficulty(difficulty)
    sound, lo, hi = upcall(rng, rate, d)
    snr = d.missed_snr_db(rng) if missed else d.call_snr_db(rng)
    direct = sound = sound * call_gain(ambient, lo, hi, rate, snr)
    if d.p_echo and rng.random() < d.p_echo:
        sound = multipath(rng, sound, rate)
    return sound, lo, hi, direct, float(snr)


CONFOUNDERS = ("downsweep", "moan", "short", "high", "humpback")


def confounder(rng: np.random.Generator, rate: float) -> np.ndarray:
    """A hard negative at unit amplitude: call-like in band or in shape, but not both."""
    return described_confounder(rng, rate)[0]


def described_confounder(
    rng: np.random.Generator, rate: float
) -> tuple[np.ndarray, str, float, float]:
    """:func:`confounder` (the same draws) with its kind (a name in CONFOUNDERS) and the
    (low, high) Hz of its fundamental."""
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
    sound = tone(rng, freq, rate, _harmonics(rng, 3))
    return sound, kind, float(freq.min()), float(freq.max())


def call_onset(
    rng: np.random.Generator, duration: float, seconds: float, rate: float, d: Difficulty
) -> int:
    """Where a call of ``duration`` s starts in a clip: at most ``d.outside`` of it outside."""
    return int(rng.uniform(-d.outside * duration, seconds - (1 - d.outside) * duration) * rate)


def add_at(out: np.ndarray, sound: np.ndarray, start: int) -> None:
    """Add ``sound`` into ``out`` beginning at sample ``start`` (either may overhang the other)."""
    lo, hi = max(start, 0), min(start + len(sound), len(out))
    if hi > lo:
        out[lo:hi] += sound[lo - start : hi - start]


def call_gain(ambient: Ambient, lo: float, hi: float, rate: float, snr_db: float) -> float:
    """Amplitude for a unit tonal in ``lo``–``hi`` Hz with band SNR ``snr_db`` (noise in 50 Hz)."""
    centre = 0.5 * (lo + hi)
    noise = ambient.band_power(centre - 25.0, centre + 25.0, rate)
    return float(np.sqrt(2 * 10 ** (snr_db / 10) * noise))  # a sine of amplitude A has power A²/2


# --- one clip ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipTruth:
    """What :func:`described_clip` put in one clip. Levels are as in the returned samples."""

    label: int
    call: bool  # an up-call is in the clip: the labelled one, or one the analyst missed
    missed: bool  # that call is label noise (label 0)
    snr_db: float  # the call's band SNR (nan without one)
    low_hz: float  # the call's fundamental: lowest and highest frequency (nan without one)
    high_hz: float
    onset: int  # sample where its direct path starts (negative: cut by the clip's start)
    direct: np.ndarray  # the direct-path call, without echoes (empty without one)
    confounder: str  # the hard negative's kind (a name in CONFOUNDERS), "" without one
    scale: float  # the factor that brought the mixture to its peak level


def clip(
    rng: np.random.Generator,
    label: int,
    *,
    rate: float = RATE,
    seconds: float = CLIP_SECONDS,
    difficulty: Difficulty | str = "hard",
) -> np.ndarray:
    """One clip as floats in [-1, 1] (peak at a random level); labelled up-call iff ``label``."""
    return described_clip(rng, label, rate=rate, seconds=seconds, difficulty=difficulty)[0]


def described_clip(
    rng: np.random.Generator,
    label: int,
    *,
    rate: float = RATE,
    seconds: float = CLIP_SECONDS,
    difficulty: Difficulty | str = "hard",
) -> tuple[np.ndarray, ClipTruth]:
    """:func:`clip` (the same draws, the same samples) and what is in it."""
    d = get_difficulty(difficulty)
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
    kind = ""
    if rng.random() < d.p_confounder[label]:
        sound, kind, _, _ = described_confounder(rng, rate)
        sound *= call_gain(ambient, 50.0, 250.0, rate, d.call_snr_db(rng))
        add_at(x, sound, int(rng.uniform(-0.2, seconds - 0.8 * len(sound) / rate) * rate))
    missed = False
    lo = hi = snr = np.nan
    onset, direct = 0, np.zeros(0)
    if label or (d.p_missed and rng.random() < d.p_missed):
        missed = not label
        sound, lo, hi, direct, snr = described_call(rng, ambient, rate, d, missed=missed)
        onset = call_onset(rng, len(direct) / rate, seconds, rate, d)
        add_at(x, sound, onset)
    peak = np.exp(rng.uniform(*np.log(PEAK_RANGE)))
    scale = peak / np.abs(x).max()
    truth = ClipTruth(
        label=int(label),
        call=len(direct) > 0,
        missed=missed,
        snr_db=float(snr),
        low_hz=float(lo),
        high_hz=float(hi),
        onset=onset,
        direct=direct * scale,
        confounder=kind,
        scale=float(scale),
    )
    return x * scale, truth


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
