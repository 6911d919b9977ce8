"""The torch backend of :class:`upcall.inference.predict.Predictor`: deploy.prototxt as a CaffeNet.

Inference runs the torch engine's :class:`upcall.engines.torch.deploy.DeployNet`: a
:class:`~upcall.engines.torch.plan.Plan` of the net (batch norm and scale folded into the
convolutions) under ``torch.inference_mode``: the same probabilities up to float32 rounding,
with fewer passes over memory.
"""

from __future__ import annotations

import numpy as np

from upcall.engines.torch.deploy import DeployNet
from upcall.inference.predict import Predictor
from upcall.job.deploy import Deploy


class TorchPredictor(Predictor):
    """deploy.prototxt built by upcall.engines.torch with the snapshot's weights, in eval mode."""

    name = "torch"

    def __init__(
        self, deploy: Deploy, *, gpu: int | None = None, threads: int | None = None
    ) -> None:
        super().__init__(deploy, gpu=gpu, threads=threads)
        self.runner = DeployNet(deploy, gpu=gpu, threads=threads)
        self.device, self.net, self.plan = self.runner.device, self.runner.net, self.runner.plan

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return self.runner.forward(x)

    def sliding(self):
        """The fully convolutional pass over long images (:mod:`upcall.inference.torch.fcn`),
        or why this net has none."""
        from upcall.inference.torch.fcn import SlidingNet

        return SlidingNet.build(self)
