"""Window audio → window images as the job's dataset made them → one up-call score per window.

Every window's image is computed from its own 2 s of audio (per-window scoring). Both
spectrogram modes normalise per image (tutorial: min–max of the image; enhanced: clipping at
the image's mean ± 3 std), so an image cut from the spectrogram of a whole block would not be
the pixels the network was trained on. What that costs: each window's FFTs are computed anew,
(window / step) times as many as one pass over the block needs (4× at the default 0.5 s step);
the FFTs are a small part of the time next to the network, which runs once per window anyway
(the deploy nets end in InnerProduct layers, so no backend runs them fully convolutionally).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from upcall.data import spectrogram
from upcall.engines.predict import Predictor, is_exported, job_kind, load_predictor
from upcall.errors import UpcallError

BAND_HZ = (50.0, 250.0)  # the up-call band: where a detection's low/high frequency is sought


@dataclass(frozen=True)
class Scored:
    """Scores of consecutive windows and their energy in the up-call band."""

    start: int  # first window's number
    scores: np.ndarray  # float64 (M,): probability of the "whale" class
    band_power: np.ndarray  # float64 (M, B): mean power per frequency bin of BAND_HZ


def band_bins() -> np.ndarray:
    """Frequencies (Hz) of the spectrogram bins inside BAND_HZ."""
    hz = np.arange(spectrogram.HEIGHT) * (spectrogram.SAMPLE_RATE / spectrogram.NFFT)
    return hz[(hz >= BAND_HZ[0]) & (hz <= BAND_HZ[1])]


class Scorer:
    """A model's network with the input spec of its dataset, applied to batches of windows.

    ``model``: a job folder, or a .onnx file from ``upcall export`` (run by ONNX Runtime, torch
    never imported; its metadata holds the input spec). ``threads``: CPU threads for the
    network (None: every core).
    """

    def __init__(
        self,
        model: Path,
        *,
        snapshot: int | None = None,
        backend: str = "torch",
        threads: int | None = None,
    ) -> None:
        from upcall.results.classify import InputSpec, dataset_info

        if is_exported(model):
            self.predictor: Predictor = load_predictor(model, threads=threads)
            self.spec = InputSpec.from_json(self.predictor.info.input)
        else:
            if (kind := job_kind(model)) is not None:
                raise UpcallError(
                    f"{model}: a {kind} job cannot detect yet (it classifies whole files)"
                )
            self.spec = InputSpec.from_dataset_info(dataset_info(model))
            self.predictor = load_predictor(
                model, snapshot=snapshot, backend=backend, threads=threads
            )
        names = self.predictor.class_names
        self.positive = names.index("whale") if "whale" in names else len(names) - 1

    def images(self, samples: np.ndarray) -> np.ndarray:
        """float64 (M, 4000) → uint8 (M, 1, H, W) as the job's dataset stored them."""
        from upcall.data.resize import resize_stack

        spec = self.spec
        images = spectrogram.compute_batch(samples, mode=spec.spectrogram_mode)
        if spec.native:
            if images.shape[1:] != (spec.height, spec.width):
                raise UpcallError(f"the job takes {spec.width}x{spec.height} native images")
        else:
            rngs = [np.random.default_rng(spec.seed) for _ in images]  # as classify does
            images = resize_stack(
                images, height=spec.height, width=spec.width, mode=spec.resize_mode, rngs=rngs
            )
        return images[:, None]

    def score(self, start: int, samples: np.ndarray) -> Scored:
        probs = self.predictor.probabilities(self.images(samples))
        return Scored(start, probs[:, self.positive], band_power(samples))


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
