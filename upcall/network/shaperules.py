"""Top shapes of Caffe 1.0's neuron and reshaping layers (Reshape, Slice, Crop, ArgMax ...).

Each rule maps a LayerParameter and its bottom shapes to its top shapes and raises ValueError on
what Caffe's CHECKs refuse; :mod:`upcall.network.shapes` merges :data:`RULES` into its own, and
the torch engine's layers (engines/torch/reshaping.py) use the same functions, so a net's shapes
have one implementation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from upcall.proto import caffe_pb2

Shape = tuple[int, ...]
Rule = Callable[[caffe_pb2.LayerParameter, list[Shape]], list[Shape]]


def canonical(axis: int, ndim: int) -> int:
    """Caffe's CanonicalAxisIndex: -ndim ≤ axis < ndim, negative counting from the end."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a {ndim}-axis blob")
    return axis % ndim


def reshape_top(bottom: Shape, p: caffe_pb2.ReshapeParameter) -> Shape:
    """Reshape: ``p.shape`` replaces the bottom axes [axis, axis + num_axes); a dim of 0 copies
    the bottom's axis at the same place, one dim of -1 takes what makes the count match."""
    ndim = len(bottom)
    start = p.axis if p.axis >= 0 else ndim + p.axis + 1  # -1: after the last axis
    if not 0 <= start <= ndim:
        raise ValueError(f"axis {p.axis} is out of range for a {ndim}-axis blob")
    end = ndim if p.num_axes == -1 else start + p.num_axes
    if p.num_axes < -1 or end > ndim:
        raise ValueError(f"num_axes {p.num_axes} from axis {start} passes the {ndim} axes")
    dims = list(p.shape.dim)
    if dims.count(-1) > 1:
        raise ValueError("more than one dim is -1")
    for i, d in enumerate(dims):
        if d == 0:
            if start + i >= end:
                raise ValueError(f"dim {i} is 0 but the bottom has no axis {start + i} to copy")
            dims[i] = bottom[start + i]
        elif d < -1:
            raise ValueError(f"dim {i} is {d}")
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        want = math.prod(bottom[start:end])
        if known == 0 or want % known:
            raise ValueError(f"no -1 dim makes {list(bottom)} fit {list(p.shape.dim)}")
        dims[dims.index(-1)] = want // known
    top = (*bottom[:start], *dims, *bottom[end:])
    if math.prod(top) != math.prod(bottom):
        raise ValueError(f"{list(p.shape.dim)} does not fit the {math.prod(bottom)} values")
    return top


def slice_sizes(bottom: Shape, p: caffe_pb2.SliceParameter, tops: int) -> tuple[int, list[int]]:
    """Slice: the axis (``slice_dim`` wins when set) and each top's length along it."""
    axis = p.slice_dim if p.HasField("slice_dim") else canonical(p.axis, len(bottom))
    if not 0 <= axis < len(bottom):
        raise ValueError(f"slice_dim {axis} is out of range for a {len(bottom)}-axis blob")
    n = bottom[axis]
    if p.slice_point:
        points = list(p.slice_point)
        if len(points) != tops - 1:
            raise ValueError(f"{len(points)} slice points for {tops} tops")
        edges = [0, *points, n]
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError(f"slice points {points} are not increasing within 0…{n}")
        return axis, [b - a for a, b in itertools.pairwise(edges)]
    if n % tops:
        raise ValueError(f"{n} does not split into {tops} equal slices")
    return axis, [n // tops] * tops


def crop_offsets(a: Shape, b: Shape, p: caffe_pb2.CropParameter) -> tuple[Shape, list[int]]:
    """Crop: the top shape (a's axes before ``axis``, b's from it) and the offset of each axis."""
    if len(a) != len(b):
        raise ValueError(f"bottoms have {len(a)} and {len(b)} axes")
    start = canonical(p.axis, len(a))
    given = list(p.offset)
    if len(given) > 1 and len(given) != len(a) - start:
        raise ValueError(f"{len(given)} offsets for the {len(a) - start} axes from {start}")
    offsets, top = [], []
    for i, n in enumerate(a):
        if i < start:
            offsets.append(0)
            top.append(n)
            continue
        off = given[0] if len(given) == 1 else (given[i - start] if given else 0)
        if n - off < b[i]:
            raise ValueError(f"axis {i}: offset {off} + {b[i]} passes the size {n}")
        offsets.append(off)
        top.append(b[i])
    return tuple(top), offsets


def argmax_top(bottom: Shape, p: caffe_pb2.ArgMaxParameter) -> Shape:
    """ArgMax: along ``axis``, top_k there; without it, over each item: (N, 1 or 2, top_k, 1 …)
    with at least 3 axes (2: indices then values, with ``out_max_val``)."""
    if p.top_k < 1:
        raise ValueError(f"top_k {p.top_k} is below 1")
    if p.HasField("axis"):
        axis = canonical(p.axis, len(bottom))
        if p.top_k > bottom[axis]:
            raise ValueError(f"top_k {p.top_k} exceeds axis {axis}'s {bottom[axis]} values")
        return (*bottom[:axis], p.top_k, *bottom[axis + 1 :])
    if p.top_k > math.prod(bottom[1:]):
        raise ValueError(f"top_k {p.top_k} exceeds the {math.prod(bottom[1:])} values per item")
    shape = [1] * max(len(bottom), 3)
    shape[0], shape[1], shape[2] = bottom[0], 2 if p.out_max_val else 1, p.top_k
    return tuple(shape)


def _reshape(layer, bottoms):
    return [reshape_top(bottoms[0], layer.reshape_param)]


def _split(layer, bottoms):
    return [bottoms[0]] * len(layer.top)


def _slice(layer, bottoms):
    axis, sizes = slice_sizes(bottoms[0], layer.slice_param, len(layer.top))
    return [(*bottoms[0][:axis], n, *bottoms[0][axis + 1 :]) for n in sizes]


def _crop(layer, bottoms):
    if len(bottoms) != 2:
        raise ValueError(f"{len(bottoms)} bottoms; Crop takes 2")
    return [crop_offsets(bottoms[0], bottoms[1], layer.crop_param)[0]]


def _reduction(layer, bottoms):
    return [bottoms[0][: canonical(layer.reduction_param.axis, len(bottoms[0]))]]


def _argmax(layer, bottoms):
    return [argmax_top(bottoms[0], layer.argmax_param)]


def _tile(layer, bottoms):
    p, shape = layer.tile_param, bottoms[0]
    if p.tiles < 1:
        raise ValueError(f"tiles {p.tiles} is below 1")
    axis = canonical(p.axis, len(shape))
    return [(*shape[:axis], shape[axis] * p.tiles, *shape[axis + 1 :])]


def _silence(layer, bottoms):
    return []


def _first(layer, bottoms):
    return [bottoms[0]]


NEURON_TYPES = ("Power", "AbsVal", "ELU", "PReLU", "BNLL", "Exp", "Log", "Threshold", "Bias")
RULES: dict[str, Rule] = {
    **dict.fromkeys(NEURON_TYPES, _first),
    "Reshape": _reshape,
    "Split": _split,
    "Slice": _slice,
    "Crop": _crop,
    "Reduction": _reduction,
    "ArgMax": _argmax,
    "Tile": _tile,
    "Silence": _silence,
}
