"""Caffe's vision layers beyond convolution and pooling: Deconvolution, SPP, MVN and Embed.

Semantics follow Caffe 1.0's layer sources: Deconvolution is the transpose of Convolution with
the weight blob shaped (C_in, num_output / group, kh, kw); SPP pools a pyramid of 2^l × 2^l bins
(kernel ceil(size / bins), stride = kernel, pad half the overhang) and concatenates the
flattened levels; MVN divides by (standard deviation + eps); Embed looks up rows of its
(input_dim, num_output) weight and never back-propagates to its indices.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from upcall.engines.torch.base import Layer, make_param
from upcall.errors import UpcallError
from upcall.network.shapes import pair, pool_out
from upcall.proto import caffe_pb2


class ConvLayer(Layer):
    """What Convolution (:mod:`upcall.engines.torch.layers`) and Deconvolution share: Caffe's
    ``convolution_param`` read and checked, the weight (:meth:`weight_shape`) and bias made."""

    KIND = "convolution"

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.convolution_param
        if p.axis != 1 or len(shapes[0]) != 4:
            raise UpcallError(f"layer '{lp.name}': only 2-D {self.KIND}s on N×C×H×W are supported")
        kernel = pair(p, "kernel_size", 0)
        self.stride, self.padding = pair(p, "stride", 1), pair(p, "pad", 0)
        self.dilation, self.groups = pair(p, "dilation", 1), p.group
        channels = shapes[0][1]
        if min(kernel) < 1 or channels % p.group or p.num_output % p.group:
            raise UpcallError(
                f"layer '{lp.name}': bad {self.KIND} (kernel {kernel}, {channels} channels in, "
                f"{p.num_output} out, group {p.group})"
            )
        shape = self.weight_shape(p.num_output, channels, p.group, kernel)
        self.weight = make_param(lp, shape, p.weight_filler, ctx, "weight")
        self.bias = (
            make_param(lp, (p.num_output,), p.bias_filler, ctx, "bias") if p.bias_term else None
        )
        self.blob_names = ("weight", "bias") if p.bias_term else ("weight",)

    @staticmethod
    def weight_shape(num_output: int, channels: int, group: int, kernel) -> tuple[int, ...]:
        raise NotImplementedError


class Deconvolution(ConvLayer):
    KIND = "deconvolution"

    @staticmethod
    def weight_shape(num_output: int, channels: int, group: int, kernel) -> tuple[int, ...]:
        return (channels, num_output // group, *kernel)  # Caffe's: input channels first

    def forward(self, x):
        return F.conv_transpose2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding=0,
            groups=self.groups,
            dilation=self.dilation,
        )


def _spp_level(size: int, bins: int) -> tuple[int, int]:
    """Caffe's SPP pooling for one axis: (kernel, pad) that cut ``size`` into ``bins``."""
    kernel = -(-size // bins)
    return kernel, (kernel * bins - size + 1) // 2


class SPP(Layer):
    """Spatial pyramid pooling: level l pools 2^l × 2^l bins; levels flattened and concatenated
    (a pyramid of height 1 is one global pooling, its top left N×C×1×1 as in Caffe)."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.spp_param
        if len(shapes[0]) != 4:
            raise UpcallError(f"layer '{lp.name}': SPP needs an N×C×H×W bottom")
        if p.pool == caffe_pb2.SPPParameter.STOCHASTIC:
            raise UpcallError(f"layer '{lp.name}': STOCHASTIC pooling is not supported")
        self.max = p.pool == caffe_pb2.SPPParameter.MAX
        self.height, self.name = p.pyramid_height, lp.name
        self._levels: dict[tuple[int, int], list[_Window]] = {}
        self._windows(tuple(shapes[0][2:]))  # a bottom too small fails at build time
        self.flat = p.pyramid_height > 1

    def _windows(self, size: tuple[int, int]) -> list[_Window]:
        """Each level's windows for an H×W bottom (Caffe reshapes SPP to its bottom's size)."""
        if size not in self._levels:
            levels = []
            for level in range(self.height):
                (kh, ph), (kw, pw) = (_spp_level(n, 2**level) for n in size)
                if ph >= kh or pw >= kw:  # Caffe's pooling CHECKs pad < kernel
                    raise UpcallError(
                        f"layer '{self.name}': a {size[0]}×{size[1]} bottom is too small for "
                        f"{self.height} pyramid levels"
                    )
                levels.append(_Window(size, (kh, kw), (ph, pw)))
            self._levels[size] = levels
        return self._levels[size]

    def forward(self, x):
        pooled = [self._pool(x, level) for level in self._windows(tuple(x.shape[2:]))]
        return torch.cat([t.flatten(1) for t in pooled], dim=1) if self.flat else pooled[0]

    def _pool(self, x, win: _Window):
        x = F.pad(x, win.padding, value=-math.inf if self.max else 0.0)
        if self.max:
            return F.max_pool2d(x, win.kernel, win.kernel)
        sums = F.avg_pool2d(x, win.kernel, win.kernel) * math.prod(win.kernel)
        return sums / win.divisor.to(x.device, x.dtype)


class _Window:
    """Caffe's pooling windows (stride = kernel) over an H×W input, as padding torch can pool
    without: left/top ``pad``, right/bottom up to the last window's end; AVE's divisor counts
    the padding but not what lies past size + pad, as Caffe's does."""

    def __init__(self, size, kernel, pad):
        outs = [
            pool_out(n, kernel=k, stride=k, pad=q)
            for n, k, q in zip(size, kernel, pad, strict=True)
        ]
        ends = [
            (o - 1) * k + k - q for o, k, q in zip(outs, kernel, pad, strict=True)
        ]  # past the input
        (h, w), (ph, pw) = size, pad
        self.kernel = tuple(kernel)
        self.padding = (pw, max(0, ends[1] - w), ph, max(0, ends[0] - h))
        counts = [
            torch.tensor(
                [min(i * k - q + k, n + q) - (i * k - q) for i in range(o)], dtype=torch.float32
            )
            for n, k, q, o in zip(size, kernel, pad, outs, strict=True)
        ]
        self.divisor = counts[0][:, None] * counts[1][None, :]


class MVN(Layer):
    """Mean-variance normalisation per (n, c), or per n with ``across_channels``:
    y = (x - mean) / (sqrt(biased variance) + eps), or only x - mean."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.mvn_param
        if len(shapes[0]) > 4:
            raise UpcallError(f"layer '{lp.name}': MVN takes blobs of at most 4 axes")
        self.start = 1 if p.across_channels else 2
        self.variance, self.eps = p.normalize_variance, p.eps

    def forward(self, x):
        # Caffe shapes the top num × channels × height × width: (4, 6) in, (4, 6, 1, 1) out
        shape = (*x.shape, *(1,) * (4 - x.dim()))
        rows = x.reshape(math.prod(shape[: self.start]), -1)  # Caffe's num × dim
        if self.variance:
            return _Normalize.apply(rows, self.eps).reshape(shape)
        return (rows - rows.mean(dim=1, keepdim=True)).reshape(shape)


class _Normalize(torch.autograd.Function):
    """Rows → (x - mean) / (sigma + eps) with Caffe's backward,
    dx = (dy - mean(dy) - y · mean(dy · y)) / (sigma + eps), finite for a constant row."""

    @staticmethod
    def forward(ctx, rows, eps):
        centred = rows - rows.mean(dim=1, keepdim=True)
        denom = centred.square().mean(dim=1, keepdim=True).sqrt() + eps
        y = centred / denom
        ctx.save_for_backward(y, denom)
        return y

    @staticmethod
    def backward(ctx, dy):
        y, denom = ctx.saved_tensors
        dx = dy - dy.mean(dim=1, keepdim=True) - y * (dy * y).mean(dim=1, keepdim=True)
        return dx / denom, None


class Embed(Layer):
    """A lookup table: each bottom value, truncated to an integer in [0, input_dim), picks a row
    of the weight; the top is the bottom's shape + (num_output,)."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.embed_param
        if p.input_dim < 1 or p.num_output < 1:
            raise UpcallError(f"layer '{lp.name}': Embed needs input_dim and num_output ≥ 1")
        self.input_dim = p.input_dim
        self.weight = make_param(lp, (p.input_dim, p.num_output), p.weight_filler, ctx, "weight")
        self.bias = (
            make_param(lp, (p.num_output,), p.bias_filler, ctx, "bias") if p.bias_term else None
        )
        self.blob_names = ("weight", "bias") if p.bias_term else ("weight",)
        self.name = lp.name

    def forward(self, x):
        index = x.detach().long()  # C++'s static_cast<int>: truncation towards zero
        if (
            index.device.type != "meta"
            and index.numel()
            and (int(index.min()) < 0 or int(index.max()) >= self.input_dim)
        ):
            raise UpcallError(
                f"layer '{self.name}': an index outside [0, {self.input_dim}) reached Embed"
            )
        out = F.embedding(index, self.weight)
        return out + self.bias if self.bias is not None else out


VISION_LAYERS = {
    "Deconvolution": Deconvolution,
    "SPP": SPP,
    "MVN": MVN,
    "Embed": Embed,
}

__all__ = ["VISION_LAYERS"]
