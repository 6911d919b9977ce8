"""Caffe 1.0's neuron layers (one top, the bottom's shape) and Bias, as torch modules.

Formulas and gradients are Caffe's (``src/caffe/layers/*_layer.cpp``): Power's backward keeps
Caffe's cases (a constant layer has gradient 0; with shift 0 it is power·y/x, NaN at x = 0, as in
Caffe); Threshold has no gradient (Caffe's backward is not implemented); AbsVal refuses to work
in place, as Caffe does. One known difference: Caffe's Power, Log and BNLL also run in place but
their backward then reads the overwritten input (and Power's and Log's the overwritten top
gradient), so Caffe's gradient below them is wrong; here it is the true one. (In place right after
a data layer, the usual spot, no gradient flows there and the two agree.) Tested layer by layer
against real Caffe in tests/engines/torch/test_neurons.py.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from upcall.engines.torch.base import Layer, make_param
from upcall.errors import UpcallError
from upcall.network.shaperules import canonical
from upcall.proto import caffe_pb2


class Sigmoid(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()

    def forward(self, x):
        return torch.sigmoid(x)  # Caffe: 0.5·tanh(x/2) + 0.5, the same to float rounding


class TanH(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()

    def forward(self, x):
        return torch.tanh(x)


class AbsVal(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        if set(lp.top) & set(lp.bottom):
            raise UpcallError(
                f"layer '{lp.name}': an AbsVal layer cannot work in place (as in Caffe)"
            )

    def forward(self, x):
        return x.abs()  # gradient sign(x), 0 at 0, as Caffe's caffe_cpu_sign


class BNLL(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()

    def forward(self, x):
        # Caffe: x + log(1 + e^-x) for x > 0, else log(1 + e^x); gradient e^x / (e^x + 1)
        # (x capped at 50). softplus is that function, and gives x itself above 20, where
        # log(1 + e^-x) is below float32's resolution of x.
        return F.softplus(x)


class ELU(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.alpha = lp.elu_param.alpha

    def forward(self, x):
        return F.elu(x, self.alpha)  # x > 0 ? x : α(e^x - 1)


class Threshold(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.threshold = lp.threshold_param.threshold

    def forward(self, x):
        return (x.detach() > self.threshold).to(x.dtype)  # 1 above the threshold, else 0


class Exp(Layer):
    """base^(shift + scale·x), base -1 meaning e: Caffe's outer·exp(inner·x)."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.exp_param
        log_base = 1.0 if p.base == -1 else _log_base(lp, p.base)
        self.inner = log_base * p.scale
        self.outer = (
            1.0 if p.shift == 0 else (math.exp(p.shift) if p.base == -1 else p.base**p.shift)
        )

    def forward(self, x):
        y = torch.exp(x if self.inner == 1 else self.inner * x)
        return y if self.outer == 1 else y * self.outer


class Log(Layer):
    """log_base(shift + scale·x), base -1 meaning e."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.log_param
        self.base_scale = 1.0 if p.base == -1 else 1 / _log_base(lp, p.base)
        self.scale, self.shift = p.scale, p.shift

    def forward(self, x):
        if self.scale != 1:
            x = self.scale * x
        y = torch.log(x + self.shift if self.shift else x)
        return y if self.base_scale == 1 else y * self.base_scale


def _log_base(lp, base: float) -> float:
    if base <= 0:
        raise UpcallError(f"layer '{lp.name}': base {base:g} must be positive (or -1 for e)")
    return math.log(base)


class _PowerGrad(torch.autograd.Function):
    """Caffe's PowerLayer::Backward_cpu for power ∉ {0, 1} and scale ≠ 0."""

    @staticmethod
    def forward(ctx, x, power, scale, shift):
        y = (shift + scale * x).pow(power)
        ctx.save_for_backward(x, y)
        ctx.args = power, scale, shift
        return y

    @staticmethod
    def backward(ctx, dy):
        x, y = ctx.saved_tensors
        power, scale, shift = ctx.args
        diff_scale = power * scale
        if power == 2:  # d/dx = 2·scale·(shift + scale·x), written as Caffe's axpby
            d = diff_scale * scale * x + diff_scale * shift
        elif shift == 0:  # power·y/x: NaN where x = 0, as in Caffe
            d = power * y / x
        else:
            d = diff_scale * (scale * x + shift).pow(power - 1)
        return dy * d, None, None, None


class Power(Layer):
    """(shift + scale·x)^power."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.power_param
        self.power, self.scale, self.shift = p.power, p.scale, p.shift

    def forward(self, x):
        if self.power * self.scale == 0:  # Caffe fills a constant; its gradient is 0
            value = 1.0 if self.power == 0 else self.shift**self.power
            return torch.full_like(x.detach(), value)
        if self.power == 1:  # gradient: the constant scale
            y = x if self.scale == 1 else self.scale * x
            return y + self.shift if self.shift else y
        if x.requires_grad and torch.is_grad_enabled():
            return _PowerGrad.apply(x, self.power, self.scale, self.shift)
        return (self.shift + self.scale * x).pow(self.power)


class PReLU(Layer):
    """max(0, x) + a·min(0, x), a per channel (axis 1) or one shared scalar blob."""

    blob_names = ("weight",)

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.prelu_param
        if len(shapes[0]) < 2:
            raise UpcallError(f"layer '{lp.name}': PReLU needs a bottom with at least 2 axes")
        filler = (
            p.filler
            if p.HasField("filler")
            else caffe_pb2.FillerParameter(type="constant", value=0.25)
        )
        shape = () if p.channel_shared else (shapes[0][1],)  # Caffe's shared slope: 0 axes
        self.weight = make_param(lp, shape, filler, ctx, "slope")

    def forward(self, x):
        return F.prelu(x, self.weight.reshape(-1))


class Bias(Layer):
    """x + b, b broadcast over x's axes [axis, axis + b's axes): a learnable blob (shape from
    ``num_axes``; -1: every axis from ``axis``) or a second bottom."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.bias_param
        ndim = len(shapes[0])
        if len(shapes) == 2:
            shape = tuple(shapes[1])
        else:
            start = canonical(p.axis, ndim) if ndim else 0
            end = ndim if p.num_axes == -1 else start + p.num_axes
            if p.num_axes < -1 or end > ndim:
                raise UpcallError(
                    f"layer '{lp.name}': num_axes {p.num_axes} from axis {start} does not fit "
                    f"{list(shapes[0])}"
                )
            shape = tuple(shapes[0][start:end])
            self.weight = make_param(lp, shape, p.filler, ctx, "bias")  # no filler: 0
            self.blob_names = ("weight",)
        # Caffe: a bias with 0 axes (a scalar) ignores `axis`
        axis = 0 if not shape else canonical(p.axis, ndim)
        if tuple(shapes[0][axis : axis + len(shape)]) != shape:
            raise UpcallError(
                f"layer '{lp.name}': bias of shape {list(shape)} does not match "
                f"{list(shapes[0])} from axis {axis}"
            )
        self.trailing = ndim - axis - len(shape)

    def forward(self, x, bias=None):
        b = self.weight if bias is None else bias
        return x + b.reshape(*b.shape, *([1] * self.trailing))


NEURONS = {
    "Sigmoid": Sigmoid,
    "TanH": TanH,
    "AbsVal": AbsVal,
    "BNLL": BNLL,
    "ELU": ELU,
    "Threshold": Threshold,
    "Exp": Exp,
    "Log": Log,
    "Power": Power,
    "PReLU": PReLU,
    "Bias": Bias,
}
