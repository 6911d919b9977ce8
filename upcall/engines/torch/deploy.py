"""A job's deploy net run by the torch engine: the CaffeNet of deploy.prototxt with a snapshot's
weights, as a folded :class:`~upcall.engines.torch.plan.Plan`, in inference mode.

The torch inference backend (:mod:`upcall.inference.torch.predict`) wraps it, and the DIGITS
engine scores the snapshots it fetches with :func:`deploy_probabilities`: the same numbers
either way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from upcall.engines.torch.caffemodel import load_caffemodel
from upcall.engines.torch.engine import configure_device
from upcall.engines.torch.net import CaffeNet
from upcall.engines.torch.plan import Plan
from upcall.errors import UpcallError
from upcall.job.deploy import BATCH, Deploy, read_deploy, softmax_classes
from upcall.proto import caffe_pb2


class DeployNet:
    """``deploy``'s net with its weights on ``gpu`` (None: the CPU, ``threads`` threads)."""

    def __init__(self, deploy: Deploy, *, gpu: int | None = None, threads: int | None = None):
        self.deploy = deploy
        self.device = configure_device(gpu, threads)
        self.net = CaffeNet(
            deploy.net,
            phase=caffe_pb2.TEST,
            input_shapes={deploy.input: (BATCH, *deploy.input_shape)},
        )
        load_caffemodel(self.net, deploy.weights)
        self.net.eval().to(self.device)
        self.plan = Plan(self.net).to(self.device)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """float32 network input (N, C, h, w) → the output blob (N, K, ...), BATCH at a time."""
        out = []
        name, output = self.deploy.input, self.deploy.output
        with torch.inference_mode():
            for i in range(0, len(x), BATCH):
                batch = torch.from_numpy(x[i : i + BATCH]).to(self.device)
                blob = self.plan.run({name: batch}, outputs=[output])[output]
                out.append(blob.float().cpu().numpy())
        return np.concatenate(out)


def deploy_probabilities(job: Path, images: np.ndarray, *, snapshot: int | None = None):
    """uint8 (N, C, H, W) images as the job's dataset stored them → float64 (N, K): the job's
    validation transform, then its deploy net with the weights of ``snapshot`` on the CPU."""
    deploy = read_deploy(job, snapshot=snapshot)
    x = deploy.preprocess.apply(images)
    k = len(deploy.class_names)
    if x.shape[1:] != deploy.input_shape:
        raise UpcallError(f"{deploy.prototxt}: takes {deploy.input_shape} input, got {x.shape[1:]}")
    if len(x) == 0:
        return np.empty((0, k))
    probs = softmax_classes(
        np.asarray(DeployNet(deploy).forward(x), np.float64), done=deploy.is_prob
    )
    if probs.shape[1:] != (k,):
        raise UpcallError(f"{deploy.prototxt}: gives {probs.shape[1:]} per image for {k} classes")
    return probs
