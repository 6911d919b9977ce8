"""The torch backend of :class:`upcall.engines.predict.Predictor`: deploy.prototxt as a CaffeNet.

Inference runs an :class:`upcall.engines.torch.infer.Plan` of the net (batch norm and scale
folded into the convolutions) under ``torch.inference_mode``: the same probabilities up to
float32 rounding, with fewer passes over memory.
"""

from __future__ import annotations

import numpy as np
import torch

from upcall.engines.predict import BATCH, Deploy, Predictor
from upcall.engines.torch.caffemodel import load_caffemodel
from upcall.engines.torch.engine import configure_device
from upcall.engines.torch.infer import Plan
from upcall.engines.torch.net import CaffeNet
from upcall.proto import caffe_pb2


class TorchPredictor(Predictor):
    """deploy.prototxt built by upcall.engines.torch with the snapshot's weights, in eval mode."""

    name = "torch"

    def __init__(
        self, deploy: Deploy, *, gpu: int | None = None, threads: int | None = None
    ) -> None:
        super().__init__(deploy, gpu=gpu, threads=threads)
        self.device = configure_device(gpu, threads)
        self.net = CaffeNet(
            deploy.net,
            phase=caffe_pb2.TEST,
            input_shapes={deploy.input: (BATCH, *deploy.input_shape)},
        )
        load_caffemodel(self.net, deploy.weights)
        self.net.eval().to(self.device)
        self.plan = Plan(self.net).to(self.device)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        out = []
        name, output = self.deploy.input, self.deploy.output
        with torch.inference_mode():
            for i in range(0, len(x), BATCH):
                batch = torch.from_numpy(x[i : i + BATCH]).to(self.device)
                blob = self.plan.run({name: batch}, outputs=[output])[output]
                out.append(blob.float().cpu().numpy())
        return np.concatenate(out)

    def sliding(self):
        """The fully convolutional pass over long images (:mod:`upcall.engines.torch.fcn`),
        or why this net has none."""
        from upcall.engines.torch.fcn import SlidingNet

        return SlidingNet.build(self)
