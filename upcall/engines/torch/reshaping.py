"""Caffe 1.0's layers that move, copy or reduce blobs: Reshape, Flatten, Split, Slice, Concat,
Crop, Reduction, ArgMax, Silence, Tile, as torch modules.

Shapes come from :mod:`upcall.network.shaperules` (the rules shape inference uses), computed from
the bottoms at each call, so a net also runs on another batch size. ArgMax has no gradient
(Caffe's backward is not implemented); Silence makes no top. Tested against real Caffe in
tests/engines/torch/test_reshaping.py.
"""

from __future__ import annotations

import torch

from upcall.engines.torch.base import Layer
from upcall.errors import UpcallError
from upcall.network.shaperules import (
    argmax_top,
    canonical,
    crop_offsets,
    reshape_top,
    slice_sizes,
)
from upcall.proto import caffe_pb2


def _not_in_place(lp) -> None:
    if set(lp.top) & set(lp.bottom):
        raise UpcallError(
            f"layer '{lp.name}': a {lp.type} layer cannot work in place (as in Caffe)"
        )


class Reshape(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        _not_in_place(lp)
        self.param = lp.reshape_param
        reshape_top(shapes[0], self.param)  # Caffe's checks, when the net is built

    def forward(self, x):
        return x.reshape(reshape_top(tuple(x.shape), self.param))


class Flatten(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        _not_in_place(lp)
        ndim = len(shapes[0])
        p = lp.flatten_param
        self.start, self.end = canonical(p.axis, ndim), canonical(p.end_axis, ndim)

    def forward(self, x):
        return x.flatten(self.start, self.end)


class Split(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.tops = len(lp.top)

    def forward(self, x):
        # one tensor for every top: autograd sums their gradients, as Caffe's Split does
        return x if self.tops == 1 else (x,) * self.tops


class Slice(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.param, self.tops = lp.slice_param, len(lp.top)
        slice_sizes(shapes[0], self.param, self.tops)

    def forward(self, x):
        axis, sizes = slice_sizes(tuple(x.shape), self.param, self.tops)
        parts = torch.split(x, sizes, dim=axis)
        return parts[0] if self.tops == 1 else parts


class Concat(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.concat_param
        ndim = len(shapes[0])
        # the deprecated concat_dim wins when set, as in Caffe
        self.axis = p.concat_dim if p.HasField("concat_dim") else canonical(p.axis, ndim)
        if self.axis >= ndim or any(len(s) != ndim for s in shapes):
            raise UpcallError(
                f"layer '{lp.name}': bottoms {shapes} do not concatenate on axis {self.axis}"
            )

    def forward(self, *xs):
        return torch.cat(xs, dim=self.axis)


class Crop(Layer):
    """The first bottom cut to the second's shape from ``axis`` on, at ``offset``."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.param = lp.crop_param
        if len(shapes) != 2:
            raise UpcallError(f"layer '{lp.name}': Crop takes 2 bottoms, got {len(shapes)}")
        crop_offsets(shapes[0], shapes[1], self.param)

    def forward(self, x, like):
        top, offsets = crop_offsets(tuple(x.shape), tuple(like.shape), self.param)
        return x[tuple(slice(o, o + n) for o, n in zip(offsets, top, strict=True))]


class Reduction(Layer):
    """SUM, ASUM, SUMSQ or MEAN over every axis from ``axis``, times ``coeff``."""

    _Op = caffe_pb2.ReductionParameter.ReductionOp

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.reduction_param
        self.axis, self.op, self.coeff = canonical(p.axis, len(shapes[0])), p.operation, p.coeff

    def forward(self, x):
        flat = x.flatten(self.axis) if self.axis else x.reshape(-1)  # (..., dim)
        if self.op == self._Op.ASUM:
            y = flat.abs().sum(-1)
        elif self.op == self._Op.SUMSQ:
            y = (flat * flat).sum(-1)
        else:
            y = flat.sum(-1)
        coeff = self.coeff / flat.shape[-1] if self.op == self._Op.MEAN else self.coeff
        return y if coeff == 1 else y * coeff


class ArgMax(Layer):
    """The top_k indices (or values, or both) of the largest values; ties go to the larger
    index, as Caffe's sort of (value, index) pairs in descending order does."""

    def __init__(self, lp, shapes, ctx):
        super().__init__()
        self.param = lp.argmax_param
        argmax_top(shapes[0], self.param)
        self.axis = (
            canonical(self.param.axis, len(shapes[0])) if self.param.HasField("axis") else None
        )

    @torch.no_grad()
    def forward(self, x):
        p, shape = self.param, argmax_top(tuple(x.shape), self.param)
        v = x.movedim(self.axis, -1) if self.axis is not None else x.reshape(x.shape[0], -1)
        # descending and stable on the reversed axis: equal values keep the larger index first
        values, flipped = torch.sort(v.flip(-1), dim=-1, descending=True, stable=True)
        values, index = values[..., : p.top_k], (v.shape[-1] - 1 - flipped[..., : p.top_k])
        index = index.to(x.dtype)
        if self.axis is not None:
            return (values if p.out_max_val else index).movedim(-1, self.axis)
        out = torch.stack((index, values), 1) if p.out_max_val else index.unsqueeze(1)
        return out.reshape(shape)


class Silence(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()

    def forward(self, *xs):
        return ()  # no tops; Caffe's backward gives the bottoms a zero gradient


class Tile(Layer):
    def __init__(self, lp, shapes, ctx):
        super().__init__()
        p = lp.tile_param
        if p.tiles < 1:
            raise UpcallError(f"layer '{lp.name}': tiles {p.tiles} is below 1")
        self.reps = [1] * len(shapes[0])
        self.reps[canonical(p.axis, len(shapes[0]))] = p.tiles

    def forward(self, x):
        return x.repeat(self.reps)  # whole copies of the axis one after another, as Caffe's


RESHAPING = {
    "Reshape": Reshape,
    "Flatten": Flatten,
    "Split": Split,
    "Slice": Slice,
    "Concat": Concat,
    "Crop": Crop,
    "Reduction": Reduction,
    "ArgMax": ArgMax,
    "Silence": Silence,
    "Tile": Tile,
}
