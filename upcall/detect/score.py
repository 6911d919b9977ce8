"""Window audio → window images as the job's dataset made them → one up-call score per window.

Two ways, chosen per model (:meth:`Scorer.choose`):

* per-window: every window's image is computed from its own 2 s of audio and goes through the
  whole network. Needed for the modes that normalise per image (tutorial: min–max of the image;
  enhanced: clipping at the image's mean ± 3 std): an image cut from the spectrogram of a whole
  block would not be the pixels the network was trained on.
* fully convolutional: for a mode whose columns do not depend on the rest of the image
  (``per_image`` False: ``fine``) and a backend with a sliding pass
  (:meth:`upcall.inference.predict.Predictor.sliding`: the torch one for nets like WhaleNet, and
  the onnx one on the same nets' exports, so a job and its export give the same detections),
  the spectrogram of a batch of windows' audio is computed once and the network's trunk runs
  once over it. Window positions are then multiples of the trunk's stride (hop × the product
  of the strides along time), so the step is rounded to one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from upcall.audio.stream import WINDOW, Span
from upcall.data import spectrogram
from upcall.inference import Model, load_model
from upcall.inference.predict import Sliding

RATE = spectrogram.SAMPLE_RATE
BAND_HZ = (50.0, 250.0)  # the up-call band: where a detection's low/high frequency is sought


@dataclass(frozen=True)
class Choice:
    """How a recording's windows are scored (written to detect.json and the log)."""

    step: int  # samples between windows (rounded to the trunk's stride when sliding)
    scoring: str  # "per-window" or "fully-convolutional"
    note: str  # one line saying which and why


@dataclass(frozen=True)
class Scored:
    """Scores of consecutive windows and their energy in the up-call band."""

    start: int  # first window's number
    scores: np.ndarray  # float64 (M,): probability of the model's positive class
    band_power: np.ndarray  # float64 (M, B): mean power per frequency bin of BAND_HZ


def band_bins() -> np.ndarray:
    """Frequencies (Hz) of the spectrogram bins inside BAND_HZ."""
    hz = np.arange(spectrogram.HEIGHT) * (spectrogram.SAMPLE_RATE / spectrogram.NFFT)
    return hz[(hz >= BAND_HZ[0]) & (hz <= BAND_HZ[1])]


class Scorer:
    """A model's network with the input spec of its dataset, applied to batches of windows.

    ``model``: what :func:`upcall.inference.load_model` opens: a job folder, a .onnx file from
    ``upcall export`` (run by ONNX Runtime, torch never imported; its metadata holds the input
    spec), a Caffe export or a DIGITS download. ``threads``: CPU threads for the network (None:
    every core).
    """

    def __init__(
        self,
        model: Path,
        *,
        snapshot: int | None = None,
        backend: str = "torch",
        threads: int | None = None,
    ) -> None:
        self.model: Model = load_model(model, snapshot=snapshot, backend=backend, threads=threads)
        self.model.check_windows()
        self.spec = self.model.input_spec
        self.sliding: Sliding | None = None  # set by choose()
        self.positive = self.model.positive_index

    def choose(self, step: int, *, per_window: bool = False) -> Choice:
        """How windows ``step`` samples apart are scored: fully convolutionally where the mode
        and the net allow it (unless ``per_window``), with the step rounded to the stride."""
        reason = self._why_not_sliding() if not per_window else "--per-window asked for"
        if isinstance(reason, str):
            self.sliding = None
            return Choice(step, "per-window", f"per-window scoring: {reason}")
        self.sliding = reason
        quantum = spectrogram.get_mode(self.spec.spectrogram_mode).hop * reason.stride
        rounded = max(1, round(step / quantum)) * quantum
        note = f"fully convolutional scoring (windows every multiple of {quantum / RATE:g} s)"
        if rounded != step:
            note += f"; step {step / RATE:g} s rounded to {rounded / RATE:g} s"
        return Choice(rounded, "fully-convolutional", note)

    def _why_not_sliding(self) -> Sliding | str:
        mode = spectrogram.get_mode(self.spec.spectrogram_mode)
        if getattr(mode, "per_image", True):
            return (
                f"the {mode.name} spectrogram mode scales each image as a whole, so a window "
                "cut from a longer image would not have the pixels of the window alone"
            )
        if not self.spec.native:
            return "the job resizes its images"
        found = self.model.sliding()
        if isinstance(found, str) and self.model.backend == "onnx":
            # the job folder (torch) may still slide: then the two differ, and the user is told
            found += (
                "; the job folder this model came from may score fully convolutionally, which "
                "gives other detections (detect it with --per-window for these)"
            )
        return found

    def score_span(self, span: Span, step: int) -> Scored:
        """Scores of a span's windows: one pass when :meth:`choose` picked it, else per window."""
        if self.sliding is None:
            view = np.lib.stride_tricks.sliding_window_view(span.samples, WINDOW)[::step]
            return self.score(span.start, view[: span.count])
        mode = spectrogram.get_mode(self.spec.spectrogram_mode)
        image = spectrogram.compute_batch(span.samples[None], mode=mode.name)[0]
        every = step // (mode.hop * self.sliding.stride)
        probs = self.sliding.probabilities(image[None], every=every, count=span.count)
        return Scored(span.start, probs[:, self.positive], span_band_power(span, step))

    def score(self, start: int, samples: np.ndarray) -> Scored:
        return Scored(start, self.model.score(samples), band_power(samples))


def span_band_power(span: Span, step: int) -> np.ndarray:
    """:func:`band_power` of a span's windows from one spectrogram of the span."""
    if step % spectrogram.STEP:  # windows between the span's frames: each on its own
        view = np.lib.stride_tricks.sliding_window_view(span.samples, WINDOW)[::step]
        return band_power(view[: span.count])
    hz = np.arange(spectrogram.HEIGHT) * (spectrogram.SAMPLE_RATE / spectrogram.NFFT)
    keep = (hz >= BAND_HZ[0]) & (hz <= BAND_HZ[1])
    power = spectrogram.power_spectrogram(span.samples[None], fs=spectrogram.SAMPLE_RATE,
                                          exact=False)[0, keep]  # fmt: skip
    per = spectrogram.frames(WINDOW)  # a window's frames
    sums = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1)], axis=1)
    first = np.arange(span.count) * (step // spectrogram.STEP)
    return ((sums[:, first + per] - sums[:, first]) / per).T


def band_power(samples: np.ndarray) -> np.ndarray:
    """Mean PSD over each window's frames in the up-call band: float64 (M, B)."""
    hz = np.arange(spectrogram.HEIGHT) * (spectrogram.SAMPLE_RATE / spectrogram.NFFT)
    keep = (hz >= BAND_HZ[0]) & (hz <= BAND_HZ[1])
    power = spectrogram.power_spectrogram(samples, fs=spectrogram.SAMPLE_RATE, exact=False)
    return power[:, keep, :].mean(axis=2)


def concat(parts: list[Scored]) -> Scored:
    """One Scored from consecutive parts (in order)."""
    if not parts:
        return Scored(0, np.zeros(0), np.zeros((0, len(band_bins()))))
    return replace(
        parts[0],
        scores=np.concatenate([p.scores for p in parts]),
        band_power=np.concatenate([p.band_power for p in parts]),
    )
