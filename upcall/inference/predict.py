"""One inference interface: a deploy net with a snapshot's weights → class probabilities.

    uint8 images as the dataset stored them (N, C, H, W)
      → Preprocess: the job's validation transform (mean, centre crop, scale), numpy, once for
        every backend (:mod:`upcall.job.deploy`)
      → Predictor.predict: deploy.prototxt with the snapshot's weights on float32 (N, C, h, w),
        run by a backend (torch, pycaffe; ONNX Runtime for a model from `upcall export`)
      → softmax probabilities (N, K)

This module is torch-free; a backend is imported only when asked for (:data:`BACKENDS`).
Which model a path holds, and which backend runs it, is :func:`upcall.inference.load_model`'s.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from upcall.errors import UpcallError
from upcall.job.deploy import Deploy, softmax_classes

# name -> "module:class"; the class takes (Deploy, *, gpu) and implements Predictor._forward.
# ONNX Runtime is a Predictor too (upcall.inference.onnx.predict.OnnxPredictor) but not a name
# here: it runs a model exported from a job (`upcall export`), not a deploy net and caffemodel,
# so load_model picks it for a .onnx path and a deploy net cannot choose it.
BACKENDS: dict[str, str] = {
    "torch": "upcall.inference.torch.predict:TorchPredictor",
    "caffe": "upcall.inference.caffe:PycaffePredictor",
}


class Sliding(Protocol):
    """A fully convolutional pass: the scores of windows ``width`` columns wide, every
    ``every · stride`` columns of a long stored image, from one pass of the network's
    convolutional trunk over the whole image (see :meth:`Predictor.sliding`)."""

    stride: int  # image columns between two positions the trunk can tell apart

    def probabilities(self, image: np.ndarray, *, every: int, count: int) -> np.ndarray:
        """uint8 (C, H, T) → float64 (count, K) for windows starting at columns
        0, every·stride, 2·every·stride, ..."""
        ...


class Predictor(ABC):
    """A job's deploy net with one snapshot's weights, run by one backend.

    A backend implements :meth:`_forward` only; preparing the input and turning the output blob
    into probabilities is done here, the same for every backend.
    """

    name: ClassVar[str]
    # Whether predict() takes inputs wider or taller than the deploy Input layer and returns
    # score maps (N, K, h', w'). None does: the deploy nets end in InnerProduct layers, which
    # need the training size. Detection's one-pass scoring of long images is sliding() instead.
    fully_convolutional: ClassVar[bool] = False

    def __init__(
        self, deploy: Deploy, *, gpu: int | None = None, threads: int | None = None
    ) -> None:
        self.deploy = deploy
        self.gpu = gpu
        # CPU threads the backend may use (None: every core); N processes sharing the cores
        # each take cores // N, or their thread pools oversubscribe the cores
        self.threads = threads

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.deploy.class_names

    @property
    def weights(self) -> Path:
        return self.deploy.weights

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W), as the dataset stored the images → float64 (N, K)."""
        return self.predict(self.deploy.preprocess.apply(images))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Network input float32 (N, C, h, w) → softmax probabilities float64 (N, K).

        (h, w) is the deploy Input layer's size. With ``fully_convolutional`` a larger (h, w)
        is allowed and the result is (N, K, h', w'): the class probabilities at every position.
        All N go to the backend in one call, which batches them itself (pycaffe starts one
        process per call).
        """
        x = np.ascontiguousarray(x, np.float32)
        c, h, w = self.deploy.input_shape
        if x.ndim != 4 or x.shape[1] != c:
            raise UpcallError(f"{self.deploy.prototxt}: takes (N, {c}, H, W) input, got {x.shape}")
        if (x.shape[2], x.shape[3]) != (h, w) and not self.fully_convolutional:
            raise UpcallError(
                f"{self.deploy.prototxt}: takes {w}x{h} input, got {x.shape[3]}x{x.shape[2]} "
                f"(the {self.name} backend has no fully-convolutional pass)"
            )
        k = len(self.class_names)
        if len(x) == 0:
            return np.empty((0, k))
        out = np.asarray(self._forward(x), np.float64)
        probs = softmax_classes(out, done=self.deploy.is_prob)
        if probs.shape[1] != k:
            raise UpcallError(
                f"{self.deploy.prototxt}: blob {self.deploy.output!r} has {probs.shape[1]} "
                f"values per image, the job has {k} classes"
            )
        return probs

    @abstractmethod
    def _forward(self, x: np.ndarray) -> np.ndarray:
        """The deploy net's output blob (N, K, ...) for float32 input x (N, C, h, w)."""

    def sliding(self) -> Sliding | str:
        """The net's fully convolutional pass over images wider than its input, or why there
        is none (a backend that has one overrides this)."""
        return f"the {self.name} backend has no fully convolutional pass"


def predictor(
    deploy: Deploy, *, backend: str = "torch", gpu: int | None = None, threads: int | None = None
) -> Predictor:
    """``deploy`` run by ``backend`` (a name in :data:`BACKENDS`) on ``gpu`` (None: the CPU)."""
    if backend not in BACKENDS:
        raise UpcallError(f"unknown backend {backend!r}; known: {', '.join(sorted(BACKENDS))}")
    module_name, cls = BACKENDS[backend].split(":")
    return getattr(importlib.import_module(module_name), cls)(deploy, gpu=gpu, threads=threads)
