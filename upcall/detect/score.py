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
  of the strides along time), so the step is rounded to one. The windows' band power comes from
  the same spectrogram's columns (the same numbers as a spectrogram of their own).

:func:`scored` reads, decodes and makes the spectrograms of the next span in a background
thread while the network scores this one, and times each stage.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from upcall.audio.stream import WINDOW, Span
from upcall.data import spectrogram
from upcall.errors import UpcallError
from upcall.inference import Model, load_model
from upcall.inference.model import NetModel
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
    every core). ``backend``: what runs a deploy net (torch, caffe), or ``onnx``: ONNX Runtime on
    the net exported once and cached (:mod:`upcall.export.cached`), the pass an exported model
    runs, with torch as the fallback for a net that cannot be exported (:attr:`note` says so).
    """

    def __init__(
        self,
        model: Path,
        *,
        snapshot: int | None = None,
        backend: str = "torch",
        threads: int | None = None,
    ) -> None:
        run = "torch" if backend == "onnx" else backend
        self.model: Model = load_model(model, snapshot=snapshot, backend=run, threads=threads)
        self.model.check_windows()
        self.note = ""  # how the net is run, when ONNX Runtime was asked for a deploy net
        if backend == "onnx" and isinstance(self.model, NetModel) and self.model.kind != "onnx":
            from upcall.export.cached import cached_onnx

            found = cached_onnx(self.model)
            if isinstance(found, Path):
                try:
                    self.model = load_model(found, threads=threads)
                    self.note = f"ONNX Runtime on the net's cached export {found}"
                except UpcallError as e:  # a damaged cache file: torch, and say which file
                    self.note = f"torch (remove the cached ONNX export: {e})"
            else:
                self.note = f"torch (the net has no ONNX export: {found})"
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
        return self.finish(self.prepare(span, step), step)

    def prepare(self, span: Span, step: int) -> Prepared:
        """What a span needs before the network (its image and band power when sliding): the
        part :func:`scored` runs a span ahead, in the reading thread."""
        if self.sliding is None:
            return Prepared(span, None, None)
        mode = spectrogram.get_mode(self.spec.spectrogram_mode)
        if not hasattr(mode, "power") or step % spectrogram.STEP or spectrogram.STEP % mode.hop:
            image = spectrogram.compute_batch(span.samples[None], mode=mode.name)[0]
            return Prepared(span, image, span_band_power(span, step))
        samples = spectrogram.checked_full_scale(span.samples[None])
        # one spectrogram: the band power's frames (hop STEP) are every (STEP / hop)-th column
        power = mode.power(samples)  # (1, T, rows), time-major
        frames = power[0, :: spectrogram.STEP // mode.hop][:, _band_rows()]  # (T', B)
        band = _window_means(frames, span.count, step)
        return Prepared(span, mode.grey(power)[0], band)

    def finish(self, prepared: Prepared, step: int) -> Scored:
        """The network's part: a prepared span → its Scored."""
        span = prepared.span
        if prepared.image is None:
            view = np.lib.stride_tricks.sliding_window_view(span.samples, WINDOW)[::step]
            return self.score(span.start, view[: span.count])
        mode = spectrogram.get_mode(self.spec.spectrogram_mode)
        every = step // (mode.hop * self.sliding.stride)
        probs = self.sliding.probabilities(prepared.image[None], every=every, count=span.count)
        return Scored(span.start, probs[:, self.positive], prepared.band_power)

    def score(self, start: int, samples: np.ndarray) -> Scored:
        return Scored(start, self.model.score(samples), band_power(samples))


@dataclass(frozen=True)
class Prepared:
    """A span with its image (C, H, T) and band power, or without them (per-window scoring)."""

    span: Span
    image: np.ndarray | None
    band_power: np.ndarray | None


def scored(scorer: Scorer, spans: Iterator[Span], step: int, stages: Stages) -> Iterator[Scored]:
    """:meth:`Scorer.score_span` of each span, the reading (and decoding) of the audio and the
    spectrograms done in a background thread one span ahead of the network; the seconds of
    each stage are added to ``stages``."""
    ahead: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            it = iter(spans)
            while not stop.is_set():
                t0 = time.perf_counter()
                span = next(it, None)
                t1 = time.perf_counter()
                stages.add("read", t1 - t0)
                if span is None:
                    break
                item = scorer.prepare(span, step)
                stages.add("spectrogram", time.perf_counter() - t1)
                ahead.put(item)
            ahead.put(None)
        except BaseException as e:  # raised again in the scoring thread
            ahead.put(e)

    thread = threading.Thread(target=produce, name="upcall-read", daemon=True)
    thread.start()
    try:
        while True:
            t0 = time.perf_counter()
            item = ahead.get()
            t1 = time.perf_counter()
            stages.add("waiting for audio", t1 - t0)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            out = scorer.finish(item, step)
            stages.add("network", time.perf_counter() - t1)
            yield out
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                ahead.get(timeout=0.1)
            except queue.Empty:
                pass


class Stages(dict):
    """Seconds per stage of a detection run (thread-safe sums), as detect.json records them."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self[name] = self.get(name, 0.0) + seconds


def _band_rows() -> np.ndarray:
    hz = np.arange(spectrogram.HEIGHT) * (spectrogram.SAMPLE_RATE / spectrogram.NFFT)
    return np.flatnonzero((hz >= BAND_HZ[0]) & (hz <= BAND_HZ[1]))


def _window_means(frames: np.ndarray, count: int, step: int) -> np.ndarray:
    """Mean of each window's frames (time-major (T, B), hop STEP) → float64 (count, B)."""
    per = spectrogram.frames(WINDOW)  # a window's frames
    sums = np.concatenate([np.zeros((1, frames.shape[1])), np.cumsum(frames, axis=0)])
    first = np.arange(count) * (step // spectrogram.STEP)
    return (sums[first + per] - sums[first]) / per


def span_band_power(span: Span, step: int) -> np.ndarray:
    """:func:`band_power` of a span's windows from one spectrogram of the span."""
    if step % spectrogram.STEP:  # windows between the span's frames: each on its own
        view = np.lib.stride_tricks.sliding_window_view(span.samples, WINDOW)[::step]
        return band_power(view[: span.count])
    power = spectrogram.power_spectrogram(
        span.samples[None], fs=spectrogram.SAMPLE_RATE, exact=False, time_major=True
    )
    return _window_means(power[0][:, _band_rows()], span.count, step)


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
