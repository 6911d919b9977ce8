"""Caffe layer types as small torch modules, behind one registry (type name → builder).

Each builder takes the LayerParameter, the shapes of the layer's bottoms and a BuildContext, and
returns a :class:`Layer`: ``forward(*bottoms)`` returns one tensor per top (a tuple when a layer
has several tops), and ``blob_names`` lists its learnable blobs in Caffe's order so that they map
1:1 onto ``.caffemodel`` blobs. Semantics follow Caffe 1.0's layer sources; comments say where
they differ from the obvious PyTorch call.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from upcall.engines.torch import losses
from upcall.engines.torch.base import TEST, TRAIN, BuildContext, Layer, make_param
from upcall.engines.torch.losses import Accuracy, InfogainLoss, SoftmaxWithLoss
from upcall.engines.torch.neurons import NEURONS
from upcall.engines.torch.pylayers import python_layer
from upcall.engines.torch.reshaping import RESHAPING
from upcall.engines.torch.vision import VISION_LAYERS, ConvLayer
from upcall.errors import UpcallError
from upcall.network.shapes import pair, pool_out, unsupported_message
from upcall.proto import caffe_pb2

# tops come from the caller (the engine's feeders: upcall.engines.torch.datalayers), not a module
INPUT_TYPES = frozenset({"Data", "Input", "ImageData", "HDF5Data", "DummyData"})
# the first top of a loss weighs 1 unless loss_weight says otherwise
LOSS_TYPES = frozenset({"SoftmaxWithLoss", "InfogainLoss", *losses.MORE_LOSSES})


def _unit_filler() -> caffe_pb2.FillerParameter:
    return caffe_pb2.FillerParameter(type="constant", value=1.0)


# ---- convolution and inner product ---------------------------------------------------


class Convolution(ConvLayer):
    @staticmethod
    def weight_shape(num_output: int, channels: int, group: int, kernel) -> tuple[int, ...]:
        return (num_output, channels // group, *kernel)

    def forward(self, x):
        return F.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class InnerProduct(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.inner_product_param
        self.axis = p.axis % len(shapes[0])
        k = math.prod(shapes[0][self.axis :])
        self.transpose = p.transpose  # Caffe then stores the weight as (K, N_out)
        shape = (k, p.num_output) if p.transpose else (p.num_output, k)
        self.weight = make_param(lp, shape, p.weight_filler, ctx, "weight")
        self.bias = (
            make_param(lp, (p.num_output,), p.bias_filler, ctx, "bias") if p.bias_term else None
        )
        self.blob_names = ("weight", "bias") if p.bias_term else ("weight",)

    def forward(self, x):
        # Caffe and torch are both C-order NCHW, so flattening from `axis` matches Caffe's blob.
        x = x.flatten(self.axis)
        w = self.weight.t() if self.transpose else self.weight
        return F.linear(x, w, self.bias)


# ---- activations and normalisation -----------------------------------------------------


class ReLU(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.slope = lp.relu_param.negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.slope) if self.slope else F.relu(x)


class LRN(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.lrn_param
        if p.local_size % 2 != 1:
            raise UpcallError(
                f"layer '{lp.name}': LRN only supports odd local_size, got {p.local_size}"
            )
        self.size, self.alpha, self.beta, self.k = p.local_size, p.alpha, p.beta, p.k
        self.within = p.norm_region == caffe_pb2.LRNParameter.WITHIN_CHANNEL
        if not self.within:
            # Caffe sums x² over the channels c - (size-1)/2 … c + (size-1)/2 (zero padded):
            # a product with this banded 0/1 matrix, one GEMM over (N·H·W, C). It runs about
            # 1.8× faster than torch's pooling-based local_response_norm (same values).
            c = torch.arange(shapes[0][1])
            band = ((c[:, None] - c[None, :]).abs() <= (self.size - 1) // 2).float()
            self.register_buffer("band", band, persistent=False)

    def forward(self, x):
        if not self.within:  # (N, C, H, W) → (N, H, W, C) @ band → back: the window sums
            sums = torch.matmul((x * x).movedim(1, -1), self.band.to(x.dtype)).movedim(-1, 1)
            return x * (self.k + self.alpha / self.size * sums).pow(-self.beta)
        # Caffe: x · (1 + α · mean of x² over a size×size window, zero padded)^-β; no k.
        pad = (self.size - 1) // 2
        mean = F.avg_pool2d(x * x, self.size, 1, pad, count_include_pad=True)
        return x * (1 + self.alpha * mean).pow(-self.beta)


class BatchNorm(Layer):
    """Caffe's BatchNorm: blobs mean, variance, scale factor (sums, not averages); no affine."""

    blob_names = ("mean", "variance", "factor")

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.batch_norm_param
        channels = shapes[0][1] if len(shapes[0]) > 1 else 1
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("variance", torch.zeros(channels))
        self.register_buffer("factor", torch.zeros(1))
        self.global_stats = (
            p.use_global_stats if p.HasField("use_global_stats") else ctx.phase == TEST
        )
        self.fraction, self.eps = p.moving_average_fraction, p.eps

    def forward(self, x):
        if self.global_stats:
            f = self.factor[0]
            s = torch.where(f == 0, torch.zeros_like(f), 1 / f)
            return F.batch_norm(x, self.mean * s, self.variance * s, training=False, eps=self.eps)
        # momentum 1 makes the fused kernel hand back this batch's mean and unbiased variance,
        # which is what Caffe adds to its running sums: no second pass over x.
        mean = torch.zeros(x.shape[1], device=x.device)
        var = torch.ones(x.shape[1], device=x.device)
        y = F.batch_norm(x, mean, var, training=True, momentum=1.0, eps=self.eps)
        if x.device.type != "meta":
            self._accumulate(mean, var, x.numel() // x.shape[1])
        return y

    @torch.no_grad()
    def _accumulate(self, mean: torch.Tensor, unbiased_var: torch.Tensor, m: int) -> None:
        # Caffe: factor = λ·factor + 1; mean = λ·mean + μ_B; var = λ·var + m/(m-1)·σ²_B.
        self.factor.mul_(self.fraction).add_(1)
        self.mean.mul_(self.fraction).add_(mean)
        self.variance.mul_(self.fraction).add_(unbiased_var if m > 1 else torch.zeros_like(mean))


class Scale(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.scale_param
        ndim = len(shapes[0])
        self.axis = p.axis % ndim
        if len(shapes) == 2:
            shape = tuple(shapes[1])
        else:
            end = ndim if p.num_axes == -1 else self.axis + p.num_axes
            shape = tuple(shapes[0][self.axis : end])
            filler = p.filler if p.HasField("filler") else _unit_filler()  # identity by default
            self.weight = make_param(lp, shape, filler, ctx, "scale")
        self.trailing = ndim - self.axis - len(shape)
        names = () if len(shapes) == 2 else ("weight",)
        if p.bias_term:
            self.bias = make_param(lp, shape, p.bias_filler, ctx, "bias")
            names += ("bias",)
        self.blob_names = names

    def forward(self, x, scale=None):
        s = self.weight if scale is None else scale
        s = s.reshape(*s.shape, *([1] * self.trailing))
        if "bias" in self.blob_names:  # one fused kernel for x·s + b
            return torch.addcmul(self.bias.reshape(s.shape), x, s)
        return x * s


class Dropout(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.ratio = lp.dropout_param.dropout_ratio
        self.active = ctx.phase == TRAIN  # Caffe decides by phase, not by module.train()

    def forward(self, x):
        return F.dropout(x, self.ratio, training=True) if self.active else x


# ---- pooling --------------------------------------------------------------------------


class Pooling(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.pooling_param
        if p.pool == caffe_pb2.PoolingParameter.STOCHASTIC:
            raise UpcallError(
                f"layer '{lp.name}': STOCHASTIC pooling is not supported by upcall's torch engine"
            )
        self.max = p.pool == caffe_pb2.PoolingParameter.MAX
        if p.global_pooling:
            self.kernel, self.stride, self.pad = tuple(shapes[0][2:4]), (1, 1), (0, 0)
        else:
            self.kernel = pair(p, "kernel_size", 0)
            self.stride, self.pad = pair(p, "stride", 1), pair(p, "pad", 0)
        if min(self.kernel) < 1 or any(
            2 * pd > k for pd, k in zip(self.pad, self.kernel, strict=True)
        ):
            raise UpcallError(
                f"layer '{lp.name}': pooling needs kernel ≥ 1 and pad ≤ kernel/2 (kernel {self.kernel}, pad {self.pad})"
            )
        # torch's ceil_mode drops a last window that starts in the right padding: Caffe's clip.
        self.ceil = p.round_mode == caffe_pb2.PoolingParameter.CEIL
        self._check_size(lp.name, tuple(shapes[0]))

    def _check_size(self, name: str, shape: tuple[int, ...]) -> None:
        # Unpadded ceil pooling with stride > kernel can differ (Caffe keeps a window starting
        # past the input, torch drops it): refuse rather than compute other sizes than Caffe.
        want = tuple(
            pool_out(n, kernel=k, stride=s, pad=pd, ceil=self.ceil)
            for n, k, s, pd in zip(shape[2:], self.kernel, self.stride, self.pad, strict=True)
        )
        got = tuple(self(torch.empty(shape, device="meta")).shape[2:])
        if want != got:
            raise UpcallError(
                f"layer '{name}': Caffe pools {shape[2:]} to {want}, torch to {got}; use stride ≤ kernel"
            )

    def forward(self, x):
        if self.max:
            return F.max_pool2d(x, self.kernel, self.stride, self.pad, ceil_mode=self.ceil)
        # Caffe's AVE divisor counts padding but not the ceil overhang: count_include_pad=True.
        return F.avg_pool2d(
            x, self.kernel, self.stride, self.pad, ceil_mode=self.ceil, count_include_pad=True
        )


# ---- blob plumbing (more in reshaping.py) -----------------------------------------------


class Eltwise(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.eltwise_param
        self.op = p.operation
        if p.coeff and (len(p.coeff) != len(shapes) or self.op != caffe_pb2.EltwiseParameter.SUM):
            raise UpcallError(
                f"layer '{lp.name}': Eltwise coeff needs SUM and one coefficient per bottom"
            )
        self.coeff = list(p.coeff) or None

    def forward(self, *xs):
        if self.op == caffe_pb2.EltwiseParameter.PROD:
            return math.prod(xs[1:], start=xs[0])
        if self.op == caffe_pb2.EltwiseParameter.MAX:
            return torch.stack(xs).amax(dim=0)
        if self.coeff:
            return sum(c * x for c, x in zip(self.coeff, xs, strict=True))
        return sum(xs[1:], start=xs[0])


class Softmax(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.axis = lp.softmax_param.axis % len(shapes[0])

    def forward(self, x):
        return F.softmax(x, dim=self.axis)


Builder = Callable[[caffe_pb2.LayerParameter, list[tuple[int, ...]], BuildContext], Layer]

LAYERS: dict[str, Builder] = {
    "Convolution": Convolution,
    "InnerProduct": InnerProduct,
    "ReLU": ReLU,
    "LRN": LRN,
    "BatchNorm": BatchNorm,
    "Scale": Scale,
    "Dropout": Dropout,
    "Pooling": Pooling,
    "Eltwise": Eltwise,
    "Softmax": Softmax,
    "SoftmaxWithLoss": SoftmaxWithLoss,
    "InfogainLoss": InfogainLoss,
    "Accuracy": Accuracy,
    "Python": python_layer,  # the Python layers upcall writes (engines.torch.pylayers)
    **NEURONS,  # Sigmoid, TanH, Power, PReLU, Bias ... (engines.torch.neurons)
    **RESHAPING,  # Reshape, Flatten, Split, Slice, Concat, Crop ... (engines.torch.reshaping)
    **VISION_LAYERS,  # Deconvolution, SPP, MVN, Embed (engines.torch.vision)
    **{name: getattr(losses, name) for name in losses.MORE_LOSSES},
}


def build_layer(
    lp: caffe_pb2.LayerParameter, shapes: list[tuple[int, ...]], ctx: BuildContext
) -> Layer:
    """The module for one layer; an unknown type fails naming the layer and the type."""
    builder = LAYERS.get(lp.type)
    if builder is None:
        raise UpcallError(unsupported_message(lp))
    try:
        return builder(lp, shapes, ctx)
    except ValueError as e:  # shapes.pair: more than 2-D
        raise UpcallError(f"layer '{lp.name}': {e}") from e
