"""Window scores → detections: smooth → threshold → group runs → merge overlaps → boxes.

Each step is a small function of frozen dataclasses (STYLE.md, after ketos's detection steps).
A detection's box here spans the windows that fired; :mod:`upcall.detect.boxes` then tightens it
to the call from the recording's audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from upcall.audio.raven import Selection


@dataclass(frozen=True)
class Timeline:
    """Per-window scores of one recording, in time order."""

    scores: np.ndarray  # float64 (N,)
    band_power: np.ndarray  # float64 (N, B): up-call band energy per window
    band_hz: np.ndarray  # float64 (B,): the bins' frequencies
    step_s: float  # seconds between window starts
    window_s: float  # seconds per window

    def start_s(self, i: int) -> float:
        return i * self.step_s


@dataclass(frozen=True)
class Run:
    """Windows first..last (inclusive) all above the threshold."""

    first: int
    last: int


@dataclass(frozen=True)
class Detection:
    begin_s: float
    end_s: float
    low_hz: float
    high_hz: float
    score: float  # the highest window score in it
    peak_s: float | None = None  # centre of the highest-scoring window

    def selection(self, *, start: datetime | None = None) -> Selection:
        """The detection as a Raven selection; ``start``: the recording's absolute start, which
        gives the selection its clock time."""
        return Selection(
            self.begin_s,
            self.end_s,
            self.low_hz,
            self.high_hz,
            "upcall",
            score=self.score,
            clock=start + timedelta(seconds=self.begin_s) if start is not None else None,
            peak_s=self.peak_s,
        )


def smooth(scores: np.ndarray, *, width: int) -> np.ndarray:
    """Centred moving average over ``width`` windows (1: unchanged); edges average fewer, and a
    width beyond the recording averages what there is (the result has one value per window)."""
    if width < 1:
        raise ValueError(f"smoothing width must be at least 1, got {width}")
    n = len(scores)
    if width == 1 or n == 0:
        return scores
    # window i averages scores[i - width//2 : i + (width-1)//2 + 1], clipped to the recording
    # (the centring of numpy's convolve "same", which this replaced: its output grew to
    # ``width`` values when the kernel was longer than the scores)
    sums = np.concatenate([[0.0], np.cumsum(scores)])
    i = np.arange(n)
    lo = np.maximum(i - width // 2, 0)
    hi = np.minimum(i + (width - 1) // 2 + 1, n)
    return (sums[hi] - sums[lo]) / (hi - lo)


def runs(above: np.ndarray) -> list[Run]:
    """Maximal runs of True in ``above``."""
    padded = np.concatenate([[False], above.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [Run(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def merge(found: list[Run], timeline: Timeline) -> list[Run]:
    """Runs whose time spans overlap (window_s > gap) become one."""
    merged: list[Run] = []
    for run in found:
        if merged:
            prev = merged[-1]
            if timeline.start_s(run.first) <= timeline.start_s(prev.last) + timeline.window_s:
                merged[-1] = Run(prev.first, run.last)
                continue
        merged.append(run)
    return merged


def box(run: Run, timeline: Timeline, scores: np.ndarray, *, floor: float = 0.25) -> Detection:
    """The detection of a run: its time span, its band where energy is ≥ ``floor`` of its peak."""
    power = timeline.band_power[run.first : run.last + 1].sum(axis=0)
    hz = timeline.band_hz
    strong = np.flatnonzero(power >= floor * power.max()) if power.max() > 0 else []
    low, high = (hz[strong[0]], hz[strong[-1]]) if len(strong) else (hz[0], hz[-1])
    peak = run.first + int(np.argmax(scores[run.first : run.last + 1]))
    return Detection(
        begin_s=timeline.start_s(run.first),
        end_s=timeline.start_s(run.last) + timeline.window_s,
        low_hz=float(low),
        high_hz=float(high),
        score=float(scores[peak]),
        peak_s=timeline.start_s(peak) + timeline.window_s / 2,
    )


def detect(timeline: Timeline, *, threshold: float, smoothing: int = 1) -> list[Detection]:
    """The whole pipeline: smoothed scores at or above ``threshold`` → detections."""
    scores = smooth(timeline.scores, width=smoothing)
    found = merge(runs(scores >= threshold), timeline)
    return [box(r, timeline, scores) for r in found]
