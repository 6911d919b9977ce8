"""The pycaffe backend of :class:`upcall.inference.predict.Predictor`: real Caffe runs
deploy.prototxt.

Each :meth:`PycaffePredictor.predict` starts one pycaffe process in the Caffe root, the program
``upcall/engines/caffe/programs/forward.py`` (:func:`upcall.engines.caffe.root.run_program`),
which loads the net once and runs every input through it; the arrays travel as .npy files in a
temporary directory bound into the root.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from upcall.engines.caffe import root as caffe
from upcall.inference.predict import Predictor
from upcall.job.deploy import BATCH, Deploy


class PycaffePredictor(Predictor):
    """deploy.prototxt and the snapshot loaded by pycaffe (``caffe.Net(..., caffe.TEST)``)."""

    name = "caffe"

    def __init__(
        self, deploy: Deploy, *, gpu: int | None = None, threads: int | None = None
    ) -> None:
        super().__init__(deploy, gpu=gpu, threads=threads)  # pycaffe's BLAS picks its own
        caffe.require_caffe()
        # The bundled root's pycaffe is Debian's CPU-only build: a GPU only with the user's own.
        self.device = caffe.pycaffe_gpu(gpu)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        d = self.deploy
        binds = list(dict.fromkeys([d.job, d.prototxt.parent, d.weights.parent]))
        with tempfile.TemporaryDirectory(prefix="upcall-pycaffe-") as tmp:
            np.save(Path(tmp) / "input.npy", x)
            params = {
                "deploy": str(d.prototxt),
                "weights": str(d.weights),
                "input": d.input,
                "output": d.output,
                "batch": BATCH,
                "gpu": self.device,
                "dir": tmp,
            }
            caffe.run_program("forward", params, binds=[*binds, Path(tmp)], cwd=d.job)
            return np.load(Path(tmp) / "output.npy")

