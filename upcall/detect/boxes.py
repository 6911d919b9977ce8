"""Tight boxes: a detection's Begin/End bound the call, Low/High follow its contour.

The windows that fired span 2 s or more each (3.5–4.6 s for a 1-s call at the default step), so
their union says where a call is, not where it starts and ends. For each detection this module
re-reads its audio (:func:`upcall.audio.stream.read_span`; detections are few, so the cost is
small beside scoring) and looks at a fine spectrogram of the up-call band:

1. each bin's power over its own median along the span (the noise floor: ambient noise and a
   ship's steady tonals fall out), in dB, smoothed over 3 bins × 3 frames;
2. the loudest cell inside the highest-scoring window (the score profile says where to look);
3. from there the call's contour is followed frame by frame both ways (the strongest bin
   within :data:`REACH` bins of the last), as long as it stays above a threshold between the
   noise and that peak (dips up to :data:`GAP_S` bridged, stray short runs at the ends
   dropped), inside the windows' union; the box's duration is held to :data:`MIN_S`..:data:`MAX_S`;
4. Low/High Freq: robust percentiles of the contour, with a margin.

Where the band shows no call (a peak under :data:`MIN_PEAK_DB` over the noise, or a contour
shorter than :data:`MIN_CALL_S`), the box falls back to the middle of the highest-scoring window,
a typical call (:data:`FALLBACK_S`) long, across the up-call band. On synthetic recordings
(``upcall synth-recording``, hard) the median |error| of begin and end against the truth boxes
is 0.13 s for the begin and 0.11 s for the end (1.5 s and 1.3 s for the windows' union).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from upcall.audio import stream

RATE = stream.RATE
BAND_HZ = (45.0, 255.0)  # where an up-call's fundamental sweeps (50–250 Hz), searched
BOX_HZ = (40.0, 260.0)  # a box's Low/High stay inside this (the band and a margin)
NFFT = 256  # 128 ms at 2 kHz: 7.8 Hz bins, enough to follow a sweep of ~100 Hz/s
HOP = 32  # 16 ms between frames
PAD_S = 1.0  # audio read each side of the windows' union: the noise floor's context
GAP_S = 0.15  # quieter frames bridged inside a call (fading harmonics, a dip)
MIN_S, MAX_S = 0.3, 3.0  # a box's duration is held to this range
FALLBACK_S = 1.0  # box length when the band shows no call
MIN_PEAK_DB = 6.0  # the peak frame must stand this far above the noise
MIN_CALL_S = 0.2  # and the contour above the threshold must last this long in all
MIN_RUN = 3  # frames in a row above the threshold that may end a call (fewer: noise)
THRESHOLD = 0.15  # fraction of the way (in dB) from the noise up to the peak: a call's edges
FLOOR_DB = 3.0  # ... but never closer to the noise than this (its level's spread: ~2 dB)
REACH = 2  # bins a contour may move between frames (840 Hz/s, a steep sweep's end, is 1.7)
MARGIN_HZ = 8.0  # added to the contour's percentiles
MIN_BAND_HZ = 10.0  # the narrowest box


@dataclass(frozen=True)
class Box:
    """A call's time-frequency box, in seconds from the start of the recording and Hz."""

    begin_s: float
    end_s: float
    low_hz: float
    high_hz: float


def tighten(
    path: Path,
    begin_s: float,
    end_s: float,
    peak_s: float,
    *,
    channel: int = 0,
    seconds: float | None = None,
) -> Box:
    """The box of the call a detection found: ``begin_s``..``end_s`` the union of its windows,
    ``peak_s`` the centre of its highest-scoring window; ``seconds``: the recording's length
    (the box stays inside it)."""
    # a call reaches at most MAX_S beyond the best window: a detection that spans minutes (a low
    # threshold) is read only about its peak
    reach = stream.WINDOW / RATE / 2 + MAX_S
    union = (max(begin_s, peak_s - reach), min(end_s, peak_s + reach))
    lo, hi = union[0] - PAD_S, union[1] + PAD_S
    samples = stream.read_span(path, lo, hi, channel=channel)
    box = locate(samples, lo, union, peak_s)
    return clamp(box, 0.0, seconds if seconds is not None else box.end_s)


def locate(samples: np.ndarray, t0: float, union: tuple[float, float], peak_s: float) -> Box:
    """The box of the call in ``samples`` (2 kHz, starting at ``t0`` s) within ``union``,
    sought around ``peak_s``; see the module's docstring."""
    if len(samples) < NFFT + 3 * HOP:
        return fallback(union, peak_s)
    ratio, hz, times = band_ratio(samples, t0)
    inside = (times >= union[0]) & (times <= union[1])
    near = np.flatnonzero(inside & (np.abs(times - peak_s) <= stream.WINDOW / RATE / 2))
    if not len(near):
        return fallback(union, peak_s)
    # the noise's level as the tracker sees it: the strongest of 2·REACH + 1 neighbouring bins
    noise = float(np.median(_neighbourhood_max(ratio)))
    top = int(near[np.argmax(ratio[near].max(axis=1))])
    rise = float(ratio[top].max()) - noise
    if rise < MIN_PEAK_DB:
        return fallback(union, peak_s)
    threshold = noise + max(FLOOR_DB, THRESHOLD * rise)
    gap = round(GAP_S * RATE / HOP)
    span = np.flatnonzero(inside)
    bins = {top: int(np.argmax(ratio[top]))}
    for direction, stop in ((-1, span[0] - 1), (1, span[-1] + 1)):
        bins.update(track(ratio, top, bins[top], direction, stop, threshold, gap))
    bins = trim(bins, top)
    if len(bins) < MIN_CALL_S * RATE / HOP:  # a noise peak: nothing lasting stands out
        return fallback(union, peak_s)
    first, last = min(bins), max(bins)
    frame_s = HOP / RATE
    begin, end = hold(times[first] - frame_s / 2, times[last] + frame_s / 2, times[top])
    contour = hz[list(bins.values())]
    low, high = np.percentile(contour, [2, 98])
    low, high = float(low) - MARGIN_HZ, float(high) + MARGIN_HZ
    if high - low < MIN_BAND_HZ:
        mid = (low + high) / 2
        low, high = mid - MIN_BAND_HZ / 2, mid + MIN_BAND_HZ / 2
    low = min(max(low, BOX_HZ[0]), BOX_HZ[1] - MIN_BAND_HZ)
    return Box(float(begin), float(end), low, min(max(high, low + MIN_BAND_HZ), BOX_HZ[1]))


def band_ratio(samples: np.ndarray, t0: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(each bin's power over its median along the span, in dB, smoothed: (T, F); the bins' Hz;
    the frames' centre times) of the up-call band of ``samples``."""
    from scipy.ndimage import uniform_filter

    hz = np.fft.rfftfreq(NFFT, 1 / RATE)
    keep = (hz >= BAND_HZ[0]) & (hz <= BAND_HZ[1])
    frames = np.lib.stride_tricks.sliding_window_view(samples, NFFT)[::HOP]
    spec = np.fft.rfft(frames * np.hanning(NFFT), axis=1)[:, keep]  # (T, F)
    power = spec.real**2 + spec.imag**2
    floor = np.maximum(np.median(power, axis=0), 1e-300)
    ratio = uniform_filter(power / floor, size=3, mode="nearest")
    times = t0 + (np.arange(len(frames)) * HOP + NFFT / 2) / RATE
    return 10 * np.log10(np.maximum(ratio, 1e-30)), hz[keep], times


def _neighbourhood_max(ratio: np.ndarray) -> np.ndarray:
    from scipy.ndimage import maximum_filter1d

    return maximum_filter1d(ratio, 2 * REACH + 1, axis=1, mode="nearest")


def track(
    ratio: np.ndarray, top: int, start: int, direction: int, stop: int, threshold: float, gap: int
) -> dict[int, int]:
    """{frame: bin} of the contour followed from frame ``top`` (bin ``start``) one frame at a
    time in ``direction`` up to ``stop`` (excluded): each frame's strongest bin within REACH of
    the last one found; frames at or above ``threshold`` are the call's, and it ends after more
    than ``gap`` frames below."""
    found: dict[int, int] = {}
    b, misses, i = start, 0, top + direction
    while i != stop and misses <= gap:
        lo = max(b - REACH, 0)
        j = lo + int(np.argmax(ratio[i, lo : b + REACH + 1]))
        if ratio[i, j] >= threshold:
            found[i], b, misses = j, j, 0
        else:
            misses += 1
        i += direction
    return found


def trim(bins: dict[int, int], top: int) -> dict[int, int]:
    """``bins`` less the runs of consecutive frames at either end shorter than MIN_RUN that
    a gap parts from the rest (noise the tracker bridged to), the run of ``top`` kept."""
    frames = sorted(bins)
    cuts = [i for i in range(1, len(frames)) if frames[i] != frames[i - 1] + 1]
    runs = [frames[a:b] for a, b in zip([0, *cuts], [*cuts, len(frames)], strict=True)]
    while len(runs) > 1 and len(runs[0]) < MIN_RUN and top not in runs[0]:
        runs.pop(0)
    while len(runs) > 1 and len(runs[-1]) < MIN_RUN and top not in runs[-1]:
        runs.pop()
    return {f: bins[f] for run in runs for f in run}


def hold(begin: float, end: float, centre: float) -> tuple[float, float]:
    """``begin``..``end`` held to MIN_S..MAX_S: grown about its middle, or cut about
    ``centre`` (the loudest frame)."""
    if end - begin < MIN_S:
        mid = (begin + end) / 2
        return mid - MIN_S / 2, mid + MIN_S / 2
    if end - begin > MAX_S:
        begin = min(max(begin, centre - MAX_S / 2), end - MAX_S)
        return begin, begin + MAX_S
    return begin, end


def fallback(union: tuple[float, float], peak_s: float) -> Box:
    """The middle of the highest-scoring window, a typical call long, across the whole band."""
    half = FALLBACK_S / 2
    begin = min(max(peak_s - half, union[0]), max(union[1] - FALLBACK_S, union[0]))
    return Box(begin, min(begin + FALLBACK_S, max(union[1], begin + MIN_S)), 50.0, 250.0)


def clamp(box: Box, start: float, stop: float) -> Box:
    """``box`` inside start..stop, never empty."""
    begin = min(max(box.begin_s, start), max(stop - MIN_S, start))
    end = max(min(box.end_s, stop), begin + min(MIN_S, max(stop - begin, 1e-3)))
    return Box(begin, end, box.low_hz, box.high_hz)
