"""Caffe ``Python`` layers the torch engine can run, by (python_param.module, layer).

Caffe imports a Python layer's module and calls it; the torch engine cannot run arbitrary
Python written against pycaffe, so it knows the layers upcall writes itself and runs their
numpy code: today the online augmentation layer (``upcall nets --augment``), which calls
:meth:`upcall.augment.batches.OnlineAugment.apply` exactly as the Caffe layer does.
"""

from __future__ import annotations

import torch

from upcall.augment.batches import OnlineAugment, batch_rng
from upcall.engines.torch.base import BuildContext, Layer
from upcall.errors import UpcallError
from upcall.network.augment_layer import LAYER_CLASS, MODULE
from upcall.proto import caffe_pb2


class OnlineAugmentLayer(Layer):
    """bottoms (data, label) → augmented data; batch ``i`` draws from ``batch_rng(seed, i)``."""

    def __init__(self, lp: caffe_pb2.LayerParameter, shapes, ctx: BuildContext) -> None:
        super().__init__()
        if len(shapes) != 2 or len(lp.top) != 1:
            raise UpcallError(f"layer '{lp.name}': needs bottoms (data, label) and one top")
        try:
            self.augment = OnlineAugment.from_param_str(lp.python_param.param_str)
            self.augment.check(tuple(shapes[0]))
        except ValueError as e:  # json.JSONDecodeError is one
            raise UpcallError(f"layer '{lp.name}': bad param_str: {e}") from None
        self.batches = 0  # forward passes so far, as the Caffe layer counts them

    def forward(self, data: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if data.device.type == "meta":  # shape inference at build time: not a batch
            return torch.empty_like(data)
        rng = batch_rng(self.augment.seed, self.batches)
        self.batches += 1
        out = self.augment.apply(
            data.detach().float().cpu().numpy(), label.detach().cpu().numpy(), rng
        )
        return torch.from_numpy(out).to(data.device)


PYTHON_LAYERS = {(MODULE, LAYER_CLASS): OnlineAugmentLayer}


def python_layer(lp: caffe_pb2.LayerParameter, shapes, ctx: BuildContext) -> Layer:
    """The module for a ``type: "Python"`` layer upcall knows; others are a one-line error."""
    key = (lp.python_param.module, lp.python_param.layer)
    builder = PYTHON_LAYERS.get(key)
    if builder is None:
        known = ", ".join(f"{m}.{c}" for m, c in PYTHON_LAYERS)
        raise UpcallError(
            f"layer '{lp.name}': Python layer {key[0]}.{key[1]} is not one upcall's torch "
            f"engine can run (it runs {known}); train this job with --engine caffe"
        )
    return builder(lp, shapes, ctx)


def seek(net, batches: int) -> None:
    """Set every augmentation layer of ``net`` to continue at batch ``batches`` (a resume)."""
    for module in net.layers:
        if isinstance(module, OnlineAugmentLayer):
            module.batches = batches
