"""Caffe's weight fillers (include/caffe/filler.hpp semantics), drawing from a torch.Generator.

A layer without a filler message gets Caffe's default FillerParameter: ``constant`` with value 0,
so an unfilled weight starts at all zeros, as it does in Caffe.
"""

from __future__ import annotations

import math

import torch

from upcall.errors import UpcallError
from upcall.proto import caffe_pb2

_Norm = caffe_pb2.FillerParameter.VarianceNorm


def fill(
    shape: tuple[int, ...],
    filler: caffe_pb2.FillerParameter,
    *,
    generator: torch.Generator,
    where: str,
) -> torch.Tensor:
    """A float32 tensor of ``shape`` filled as Caffe's ``filler`` would fill it.

    ``where`` names the layer and blob for error messages ("layer 'conv1' weight").
    """
    kind = filler.type
    if kind not in _FILLERS:
        raise UpcallError(f"{where}: filler type '{kind}' is not one upcall's torch engine knows")
    if kind == "gaussian" and filler.sparse >= 0:
        raise UpcallError(f"{where}: sparse gaussian fillers are not supported")
    return _FILLERS[kind](shape, filler, generator, where)


def _constant(shape, f, g, where):
    return torch.full(shape, f.value, dtype=torch.float32)


def _uniform(shape, f, g, where):
    return _uniform_between(shape, f.min, f.max, g)


def _gaussian(shape, f, g, where):
    return torch.randn(shape, generator=g, dtype=torch.float32) * f.std + f.mean


def _fan(shape: tuple[int, ...], f: caffe_pb2.FillerParameter) -> float:
    # Caffe: fan_in = count / shape[0]; fan_out = count / shape[1] (count for 1-D blobs).
    count = math.prod(shape)
    fan_in = count / shape[0]
    fan_out = count / shape[1] if len(shape) > 1 else count
    if f.variance_norm == _Norm.FAN_OUT:
        return fan_out
    if f.variance_norm == _Norm.AVERAGE:
        return (fan_in + fan_out) / 2
    return fan_in


def _xavier(shape, f, g, where):
    scale = math.sqrt(3.0 / _fan(shape, f))
    return _uniform_between(shape, -scale, scale, g)


def _msra(shape, f, g, where):
    std = math.sqrt(2.0 / _fan(shape, f))
    return torch.randn(shape, generator=g, dtype=torch.float32) * std


def _positive_unitball(shape, f, g, where):
    # Uniform in [0, 1), then each of the shape[0] rows is scaled to sum to 1.
    x = torch.rand(shape, generator=g, dtype=torch.float32)
    rows = x.reshape(shape[0], -1)
    return (rows / rows.sum(dim=1, keepdim=True)).reshape(shape)


def _bilinear(shape, f, g, where):
    if len(shape) != 4 or shape[2] != shape[3]:
        raise UpcallError(f"{where}: bilinear filler needs a 4-D blob with square kernels")
    k = shape[3]
    # Caffe: f = ceil(k / 2), c = (k - 1) / (2 f), w(x, y) = (1 - |x/f - c|)(1 - |y/f - c|)
    factor = math.ceil(k / 2)
    center = (k - 1) / (2.0 * factor)
    r = torch.arange(k, dtype=torch.float32)
    w1 = 1 - (r / factor - center).abs()  # (k,)
    return (w1[:, None] * w1[None, :]).expand(shape).clone()


def _uniform_between(shape, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=g, dtype=torch.float32) * (high - low) + low


_FILLERS = {
    "constant": _constant,
    "uniform": _uniform,
    "gaussian": _gaussian,
    "xavier": _xavier,
    "msra": _msra,
    "positive_unitball": _positive_unitball,
    "bilinear": _bilinear,
}
