"""The ONNX Runtime backend of :class:`upcall.inference.predict.Predictor` (torch-free).

It runs a model written by ``upcall export JOB --format onnx``; the model's metadata
(:class:`upcall.inference.onnx.metadata.DeployInfo`) gives the transform, the input size and the
class names, so :func:`load_onnx` needs no job folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from upcall.errors import UpcallError
from upcall.inference.onnx.metadata import DeployInfo
from upcall.inference.onnx.session import session as _session
from upcall.inference.predict import Predictor
from upcall.job.deploy import BATCH, Deploy
from upcall.proto import caffe_pb2


def read_info(session, path: Path) -> DeployInfo:
    """The model's :class:`DeployInfo`, from the metadata_props onnxruntime reads."""
    return DeployInfo.from_props(dict(session.get_modelmeta().custom_metadata_map), source=path)


def onnx_deploy(path: Path, info: DeployInfo) -> Deploy:
    """A :class:`Deploy` for an exported model: the .onnx file stands for prototxt and weights."""
    c, h, w = info.input_shape
    return Deploy(
        job=path.parent,
        prototxt=path,
        net=caffe_pb2.NetParameter(),  # the graph is in the .onnx file
        weights=path,
        input=info.input_name,
        input_shape=(c, h, w),
        output=info.output_name,
        is_prob=info.is_prob,
        class_names=tuple(info.class_names),
        preprocess=info.preprocess(),
    )


def load_onnx(path: Path, *, gpu: int | None = None, threads: int | None = None) -> OnnxPredictor:
    """The predictor of an exported model file, with everything it needs from its metadata."""
    path = Path(path).resolve()
    if not path.is_file():
        raise UpcallError(f"{path}: no such ONNX model")
    session = _session(path, gpu, threads)
    info = read_info(session, path)
    return OnnxPredictor(
        onnx_deploy(path, info), gpu=gpu, threads=threads, session=session, info=info
    )


class OnnxPredictor(Predictor):
    """An exported model run by ONNX Runtime; ``info`` is its :class:`DeployInfo`."""

    name = "onnx"

    def __init__(
        self,
        deploy: Deploy,
        *,
        gpu: int | None = None,
        threads: int | None = None,
        session=None,
        info=None,
    ) -> None:
        super().__init__(deploy, gpu=gpu, threads=threads)
        if deploy.weights.suffix.lower() != ".onnx":
            raise UpcallError(
                f"{deploy.job}: the onnx backend runs an exported model; make one with "
                f"`upcall export {deploy.job} --format onnx` and classify the .onnx file"
            )
        self.session = session if session is not None else _session(deploy.weights, gpu, threads)
        self.info = info if info is not None else read_info(self.session, deploy.weights)

    def sliding(self):
        """The fully convolutional pass of the exported graph (:mod:`upcall.inference.onnx.fcn`),
        the one the torch backend runs on the job folder, or why there is none."""
        if self.gpu is not None:
            return "the onnx backend's fully convolutional pass runs on the CPU only"
        from upcall.inference.onnx.fcn import OnnxSliding

        return OnnxSliding.build(self)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        d = self.deploy
        out = []
        for i in range(0, len(x), BATCH):
            out.append(self.session.run([d.output], {d.input: x[i : i + BATCH]})[0])
        return np.concatenate(out)
