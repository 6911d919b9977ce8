"""The model object of inference: one trained model, whatever made it (:func:`load_model`).

    load_model(path) -> Model       a job folder, a .onnx or Caffe export, a classical job,
                                    a DIGITS download.tar.gz or a deploy.prototxt folder
    model.input_spec                what it takes: spectrogram mode, image size, resizing
    model.class_names, .positive_class, .positive_index
    model.probabilities(images)     uint8 (N, C, H, W) as its dataset stored them → (N, K)
    model.score(samples)            float64 2-s clips (M, 4000) → (M,) positive-class probability
    model.classify(files, ...)      clips or PNGs → one row per input (`upcall classify`)

A network model runs on a :class:`~upcall.inference.predict.Predictor` backend, made when first
needed (reading a model imports no torch); the classical baseline reads clips itself.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from upcall.data.pngroot import ReadOptions
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import sha256_file
from upcall.inference.inputs import InputSpec, prepare, window_images
from upcall.inference.labels import positive_index
from upcall.inference.predict import Predictor, Sliding, predictor
from upcall.job.deploy import Deploy

# What load_model recognised (Model.kind).
KINDS = ("job", "onnx", "caffe-export", "digits", "caffe-folder", "classical")


class Model(ABC):
    """A trained model and what it takes; see the module doc."""

    path: Path  # what load_model was given
    kind: str  # one of KINDS
    class_names: tuple[str, ...]

    @property
    @abstractmethod
    def input_spec(self) -> InputSpec | None:
        """How its inputs are made; None for a model that reads clips itself (classical)."""

    @property
    def read(self) -> ReadOptions:
        """How clips that are not 2 s, 2000 Hz mono are made to fit, as its dataset's were."""
        return self.input_spec.read if self.input_spec else ReadOptions()

    @property
    def positive_index(self) -> int:
        """The index of the class detection and the report score (upcall.inference.labels)."""
        return positive_index(self.class_names)

    @property
    def positive_class(self) -> str:
        return self.class_names[self.positive_index]

    @abstractmethod
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) as the model's dataset stored them → float64 (N, K)."""

    def images(self, samples: np.ndarray) -> np.ndarray:
        """float64 2-s clips (M, 4000) → uint8 (M, 1, H, W), made as the model's dataset was."""
        return window_images(samples, self.input_spec)

    def score(self, samples: np.ndarray) -> np.ndarray:
        """float64 2-s clips (M, 4000) → float64 (M,): the positive class's probability."""
        return self.probabilities(self.images(samples))[:, self.positive_index]

    @abstractmethod
    def classify(
        self, files: Sequence[Path], *, report: BatchReport, read: ReadOptions | None = None
    ) -> list[dict]:
        """One row ({input, label, one probability per class}) per readable file; bad files
        are reported through ``report``. ``read``: how clips are made to fit (default
        :attr:`read`)."""

    def check_windows(self) -> None:
        """An UpcallError when the model cannot score windows of a recording (detection)."""
        return None

    def sliding(self) -> Sliding | str:
        """A fully convolutional pass over long images, or why there is none."""
        return f"a {self.kind} model has no fully convolutional pass"

    @property
    def backend(self) -> str:
        """What runs the model (torch, caffe, onnx, classical)."""
        return self.kind

    @abstractmethod
    def fingerprint(self) -> tuple[str, str]:
        """(weights, SHA-256) naming exactly the weights that score (detect.json records it)."""


class NetModel(Model):
    """A deploy net with its weights (a job's, an export's, a download's), run by a backend.

    ``spec``, ``spectrograms``: the InputSpec and the spectrograms.json, or functions making
    them when first asked (a job reads its dataset description only then). ``predictor``: a
    backend already made (ONNX Runtime's, which the metadata came from); otherwise one is made
    on first use. ``keep``: what must live as long as the model (the temporary folder a
    download was unpacked to).
    """

    def __init__(
        self,
        path: Path,
        kind: str,
        deploy: Deploy,
        spec: InputSpec | Callable[[], InputSpec],
        *,
        backend: str = "torch",
        gpu: int | None = None,
        threads: int | None = None,
        predictor: Predictor | None = None,
        spectrograms: dict[str, Any] | Callable[[], dict[str, Any] | None] | None = None,
        keep: object = None,
    ) -> None:
        self.path, self.kind, self.deploy = Path(path), kind, deploy
        self.class_names = tuple(deploy.class_names)
        self._spec, self._backend, self.gpu, self.threads = spec, backend, gpu, threads
        self._predictor = predictor
        self._spectrograms = spectrograms
        self._keep = keep

    @cached_property
    def input_spec(self) -> InputSpec:
        return self._spec() if callable(self._spec) else self._spec

    @cached_property
    def spectrograms(self) -> dict[str, Any] | None:
        """Its dataset's spectrograms.json (SpectrogramSettings as JSON), where known."""
        s = self._spectrograms
        return s() if callable(s) else s

    @property
    def backend(self) -> str:
        return self._predictor.name if self._predictor is not None else self._backend

    @property
    def predictor(self) -> Predictor:
        """The backend running the net, made on first use."""
        if self._predictor is None:
            self._predictor = predictor(
                self.deploy, backend=self._backend, gpu=self.gpu, threads=self.threads
            )
        return self._predictor

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self.predictor.probabilities(images)

    def sliding(self) -> Sliding | str:
        return self.predictor.sliding()

    def classify(
        self, files: Sequence[Path], *, report: BatchReport, read: ReadOptions | None = None
    ) -> list[dict]:
        spec = self.input_spec
        if read is not None:
            spec = replace(spec, read=read)
        paths, images = [], []
        for path in files:
            try:
                images.append(prepare(path, spec))
                paths.append(path)
                report.ok()
            except (UpcallError, ValueError, OSError) as e:
                report.fail(path, str(e).removeprefix(f"{path}: "))
        if not images:
            return []
        return rows(paths, self.probabilities(np.stack(images)), self.class_names)

    def fingerprint(self) -> tuple[str, str]:
        d = self.deploy
        if d.weights == d.prototxt:  # an ONNX model: one file holds graph and weights
            return str(d.weights), _sha256(d.weights)
        both = f"{_sha256(d.weights)} {_sha256(d.prototxt)}"
        # a download's temporary folder changes every run: name the archive and the member
        weights = str(d.weights) if self._keep is None else f"{self.path} ({d.weights.name})"
        return weights, hashlib.sha256(both.encode()).hexdigest()


class ClassicalJobModel(Model):
    """A job of the classical baseline (:mod:`upcall.classical.model`): it computes its own
    features from the sound, so it takes clips, not spectrogram images."""

    kind = "classical"
    input_spec = None

    def __init__(self, path: Path, cls) -> None:
        self.path, self._cls = Path(path), cls  # ClassicalModel, loaded when first needed
        self.class_names = tuple(cls.class_names)

    @cached_property
    def fitted(self):
        """The fitted baseline (templates and classifier), loaded from the job folder."""
        return self._cls.load(self.path)

    @property
    def read(self) -> ReadOptions:
        return self.fitted.read

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        raise UpcallError(
            f"{self.path}: the classical baseline classifies audio clips, not spectrogram images"
        )

    def score(self, samples: np.ndarray) -> np.ndarray:
        from upcall.classical.features import clip_features

        f = self.fitted
        x = np.stack([clip_features(s, f.bank, f.settings) for s in samples])
        return f.probabilities(x)[:, self.positive_index]

    def classify(
        self, files: Sequence[Path], *, report: BatchReport, read: ReadOptions | None = None
    ) -> list[dict]:
        return self.fitted.classify(files, report=report, read=read or self.read)

    def check_windows(self) -> None:
        raise UpcallError(
            f"{self.path}: the classical baseline cannot detect: it classifies whole 2-s clips "
            "from their features, not windows of a recording; detect with a trained network job"
        )

    def fingerprint(self) -> tuple[str, str]:
        self.check_windows()
        raise AssertionError("unreachable")


def _sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as e:
        raise UpcallError(f"{path}: cannot read: {e.strerror or e}") from None


def rows(paths: Sequence[Path], probs: np.ndarray, class_names: Sequence[str]) -> list[dict]:
    """`upcall classify`'s rows: the input, the most probable class, every class's probability."""
    return [
        {
            "input": str(path),
            "label": class_names[int(np.argmax(p))],
            **{name: float(v) for name, v in zip(class_names, p, strict=True)},
        }
        for path, p in zip(paths, probs, strict=True)
    ]
