"""The pycaffe backend of :class:`upcall.engines.predict.Predictor`: real Caffe runs deploy.prototxt.

Each :meth:`PycaffePredictor.predict` starts one pycaffe process in the Caffe root (that is what
:func:`upcall.engines.caffe.root.run_pycaffe` does), which loads the net once and runs every
input through it; the arrays travel as .npy files in a temporary directory bound into the root.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from upcall.engines.caffe import root as caffe
from upcall.engines.predict import BATCH, Deploy, Predictor


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
            script = _SCRIPT.replace("PARAMS", repr(json.dumps(params)))
            caffe.run_pycaffe(script, binds=[*binds, Path(tmp)], cwd=d.job)
            return np.load(Path(tmp) / "output.npy")


# pycaffe: the deploy net in TEST phase, the input blob reshaped to each batch, the output blob
# read back after every forward pass.
_SCRIPT = """
import json, caffe, numpy as np
p = json.loads(PARAMS)
if p["gpu"] is not None:
    caffe.set_mode_gpu()
    caffe.set_device(p["gpu"])
else:
    caffe.set_mode_cpu()
net = caffe.Net(p["deploy"], caffe.TEST, weights=p["weights"])
x = np.load(p["dir"] + "/input.npy")
out = []
for i in range(0, len(x), p["batch"]):
    batch = x[i : i + p["batch"]]
    net.blobs[p["input"]].reshape(*batch.shape)
    net.reshape()
    net.blobs[p["input"]].data[...] = batch
    net.forward()
    out.append(net.blobs[p["output"]].data.copy())
np.save(p["dir"] + "/output.npy", np.concatenate(out))
print(json.dumps(len(x)))
"""
