"""Caffe's blob-shape arithmetic, and shape inference over a NetParameter.

One implementation serves the net builder, its tests and the torch engine. The rules follow
BVLC Caffe 1.0: convolution rounds down; pooling rounds up by default (``round_mode: CEIL``) and,
when padded, drops a last window that would start in the padding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from upcall.errors import UpcallError
from upcall.network.phase import layer_included
from upcall.network.shaperules import RULES as NEURON_AND_RESHAPING_RULES
from upcall.network.shaperules import canonical
from upcall.proto import caffe_pb2

Shape = tuple[int, ...]

__all__ = [
    "SUPPORTED_TYPES",
    "conv_out",
    "cost",
    "infer_shapes",
    "pair",
    "pool_out",
    "require_supported",
]


def conv_out(size: int, *, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis (Caffe's im2col arithmetic)."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def pool_out(size: int, *, kernel: int, stride: int = 1, pad: int = 0, ceil: bool = True) -> int:
    """Output length of a pooling along one axis, with Caffe's rounding and padding clip."""
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil else span // stride) + 1
    # Caffe: "ensure that the last pooling starts strictly inside the image" when padded.
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pair(msg, field: str, default: int) -> tuple[int, int]:
    """Caffe's spatial (h, w): ``<base>_h``/``<base>_w`` when set (``kernel_size`` → ``kernel_h``),
    else the scalar or repeated ``field`` (one value for both, or h then w).

    Raises ValueError for more than two values: only 2-D layers are supported.
    """
    base = field.removesuffix("_size")
    fields = msg.DESCRIPTOR.fields_by_name
    if f"{base}_h" in fields and (msg.HasField(f"{base}_h") or msg.HasField(f"{base}_w")):
        return getattr(msg, f"{base}_h"), getattr(msg, f"{base}_w")
    value = getattr(msg, field)
    if isinstance(value, int):
        return (value, value) if msg.HasField(field) else (default, default)
    values = list(value) or [default]
    if len(values) > 2:
        raise ValueError(f"{field}: {len(values)} values; only 2-D layers are supported")
    return values[0], values[-1]


def _conv(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    p = layer.convolution_param
    n, c, h, w = bottoms[0]
    kh, kw = pair(p, "kernel_size", 0)
    sh, sw = pair(p, "stride", 1)
    ph, pw = pair(p, "pad", 0)
    dh, dw = pair(p, "dilation", 1)
    if not kh or not kw:
        raise ValueError("no kernel size")
    if c % p.group or p.num_output % p.group:
        raise ValueError(f"group {p.group} does not divide {c} inputs and {p.num_output} outputs")
    return [
        (
            n,
            p.num_output,
            conv_out(h, kernel=kh, stride=sh, pad=ph, dilation=dh),
            conv_out(w, kernel=kw, stride=sw, pad=pw, dilation=dw),
        )
    ]


def _pool(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    p = layer.pooling_param
    n, c, h, w = bottoms[0]
    if p.global_pooling:
        return [(n, c, 1, 1)]
    kh, kw = pair(p, "kernel_size", 0)
    sh, sw = pair(p, "stride", 1)
    ph, pw = pair(p, "pad", 0)
    if not kh or not kw:
        raise ValueError("no kernel size")
    ceil = p.round_mode == caffe_pb2.PoolingParameter.CEIL
    return [
        (
            n,
            c,
            pool_out(h, kernel=kh, stride=sh, pad=ph, ceil=ceil),
            pool_out(w, kernel=kw, stride=sw, pad=pw, ceil=ceil),
        )
    ]


def _axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


def _inner_product(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    axis = _axis(layer.inner_product_param.axis, len(bottoms[0]))
    if not layer.inner_product_param.HasField("num_output"):
        raise ValueError("num_output is not set")
    return [(*bottoms[0][:axis], layer.inner_product_param.num_output)]


def _concat(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    p = layer.concat_param  # the deprecated concat_dim wins when set, as in Caffe
    axis = p.concat_dim if p.HasField("concat_dim") else canonical(p.axis, len(bottoms[0]))
    if axis >= len(bottoms[0]) or len({len(b) for b in bottoms}) != 1:
        raise ValueError(f"bottoms {bottoms} do not concatenate on axis {axis}")
    rest = {b[:axis] + b[axis + 1 :] for b in bottoms}
    if len(rest) != 1:
        raise ValueError(f"bottoms differ outside axis {axis}: {bottoms}")
    return [(*bottoms[0][:axis], sum(b[axis] for b in bottoms), *bottoms[0][axis + 1 :])]


def _flatten(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    shape = bottoms[0]
    a = _axis(layer.flatten_param.axis, len(shape))
    e = _axis(layer.flatten_param.end_axis, len(shape))
    merged = 1
    for d in shape[a : e + 1]:
        merged *= d
    return [(*shape[:a], merged, *shape[e + 1 :])]


def _eltwise(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    if len(set(bottoms)) != 1:
        raise ValueError(f"bottoms have different shapes: {bottoms}")
    return [bottoms[0]]


def _same(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    return [bottoms[0]]


def _scalar(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    # Loss and accuracy tops are 0-axis blobs in Caffe (pycaffe shows shape ()).
    return [()]


def _deconv(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    p = layer.convolution_param
    n, c, h, w = bottoms[0]
    kernel, stride = pair(p, "kernel_size", 0), pair(p, "stride", 1)
    pad, dilation = pair(p, "pad", 0), pair(p, "dilation", 1)
    if not min(kernel):
        raise ValueError("no kernel size")
    if c % p.group or p.num_output % p.group:
        raise ValueError(f"group {p.group} does not divide {c} inputs and {p.num_output} outputs")
    size = [
        s * (x - 1) + d * (k - 1) + 1 - 2 * q
        for x, k, s, q, d in zip((h, w), kernel, stride, pad, dilation, strict=True)
    ]
    return [(n, p.num_output, *size)]


def _spp(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    n, c, h, w = bottoms[0]
    height = layer.spp_param.pyramid_height
    if height == 1:
        return [(n, c, 1, 1)]
    bins = 0
    for level in range(height):
        k = [-(-x // 2**level) for x in (h, w)]
        pad = [(kx * 2**level - x + 1) // 2 for kx, x in zip(k, (h, w), strict=True)]
        bins += pool_out(h, kernel=k[0], stride=k[0], pad=pad[0]) * pool_out(
            w, kernel=k[1], stride=k[1], pad=pad[1]
        )
    return [(n, c * bins)]


def _legacy4(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    # MVN shapes its top num × channels × height × width, 1 for missing axes
    if len(bottoms[0]) > 4:
        raise ValueError("more than 4 axes")
    return [(*bottoms[0], *(1,) * (4 - len(bottoms[0])))]


def _embed(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    return [(*bottoms[0], layer.embed_param.num_output)]


def _dummy(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    p = layer.dummy_data_param
    if p.shape:
        shapes = [tuple(s.dim) for s in p.shape]
    else:  # the legacy num/channels/height/width, each one value or one per top
        fields = [list(f) for f in (p.num, p.channels, p.height, p.width)]
        shapes = [
            tuple(f[min(i, len(f) - 1)] for f in fields) for i in range(max(map(len, fields)))
        ]
    if len(shapes) not in (1, len(layer.top)):
        raise ValueError(f"{len(shapes)} shapes for {len(layer.top)} tops")
    return shapes * len(layer.top) if len(shapes) == 1 else shapes


def _input(layer: caffe_pb2.LayerParameter, bottoms: list[Shape]) -> list[Shape]:
    shapes = [tuple(s.dim) for s in layer.input_param.shape]
    if len(shapes) not in (1, len(layer.top)):
        raise ValueError(f"{len(shapes)} shapes for {len(layer.top)} tops")
    return shapes * len(layer.top) if len(shapes) == 1 else shapes


_RULES: dict[str, Callable[[caffe_pb2.LayerParameter, list[Shape]], list[Shape]]] = {
    "Input": _input,
    "Convolution": _conv,
    "Pooling": _pool,
    "InnerProduct": _inner_product,
    "ReLU": _same,
    "Sigmoid": _same,
    "TanH": _same,
    "LRN": _same,
    "Dropout": _same,
    "BatchNorm": _same,
    "Scale": _same,
    "Softmax": _same,
    "Concat": _concat,
    "Flatten": _flatten,
    "Eltwise": _eltwise,
    "SoftmaxWithLoss": _scalar,
    "InfogainLoss": _scalar,
    "Accuracy": _scalar,
    "Data": _same,  # placeholder: Data tops come from input_shapes (see infer_shapes)
    "ImageData": _same,  # the same placeholder
    "HDF5Data": _same,  # the same placeholder
    "DummyData": _dummy,
    "Deconvolution": _deconv,
    "SPP": _spp,
    "MVN": _legacy4,
    "Embed": _embed,
    "EuclideanLoss": _scalar,
    "SigmoidCrossEntropyLoss": _scalar,
    "HingeLoss": _scalar,
    "MultinomialLogisticLoss": _scalar,
    # a Python layer upcall writes (online augmentation) keeps its first bottom's shape
    "Python": _same,
    **NEURON_AND_RESHAPING_RULES,  # Power ... Bias, Reshape ... Tile (network.shaperules)
}

# The layer types the torch engine runs: those shape inference knows (a test keeps them equal to
# upcall.engines.torch.layers.LAYERS and the data layers it feeds). Real Caffe runs any type.
SUPPORTED_TYPES: frozenset[str] = frozenset(_RULES)
# data layers whose tops come from input_shapes (the engine feeds them)
FED_TYPES = frozenset({"Data", "ImageData", "HDF5Data"})


def unsupported_message(layer: caffe_pb2.LayerParameter) -> str:
    """The one line that refuses ``layer`` for the torch engine."""
    return (
        f"layer {layer.name!r} (type {layer.type}) is not implemented by the torch engine; "
        "--engine caffe runs it"
    )


def require_supported(layer: caffe_pb2.LayerParameter) -> None:
    """UpcallError naming ``layer`` when the torch engine does not implement its type."""
    if layer.type not in SUPPORTED_TYPES:
        raise UpcallError(unsupported_message(layer))


def infer_shapes(
    net: caffe_pb2.NetParameter,
    input_shapes: Mapping[str, Shape],
    *,
    phase: int | None = None,
    lenient: bool = False,
) -> dict[str, Shape]:
    """Shape of every blob of ``net``, walking its layers in order (in-place tops overwrite).

    ``input_shapes`` gives the tops of Data, ImageData and HDF5Data layers (e.g.
    ``{"data": (N, C, H, W)}``; a "label" top defaults to ``(N,)``). With ``phase``
    (``caffe_pb2.TRAIN``/``TEST``) only the layers active in that phase are walked. Raises
    UpcallError naming the layer on a type the torch engine does not run, a missing bottom or a
    blob that shrinks to nothing; ``lenient`` (real Caffe runs the net): a layer of another type
    leaves its tops, and whatever is computed from them, out of the result.
    """
    shapes: dict[str, Shape] = {}
    unknown: set[str] = set()
    for name, shape in zip(net.input, net.input_shape, strict=False):
        shapes[name] = tuple(shape.dim)
    for layer in net.layer:
        if phase is not None and not layer_included(layer, caffe_pb2.NetState(phase=phase)):
            continue
        if lenient and (layer.type not in SUPPORTED_TYPES or unknown.intersection(layer.bottom)):
            unknown.update(layer.top)
            for top in layer.top:
                shapes.pop(top, None)
            continue
        for top, shape in zip(layer.top, _layer_shapes(layer, shapes, input_shapes), strict=True):
            shapes[top] = shape
            unknown.discard(top)
    return shapes


def _layer_shapes(
    layer: caffe_pb2.LayerParameter, shapes: Mapping[str, Shape], input_shapes: Mapping[str, Shape]
) -> list[Shape]:
    where = f"layer {layer.name!r} ({layer.type})"
    require_supported(layer)
    rule = _RULES[layer.type]
    if layer.type in FED_TYPES:
        return _data_tops(layer, input_shapes, where)
    missing = [b for b in layer.bottom if b not in shapes]
    if missing:
        raise UpcallError(f"{where}: bottom blob {missing[0]!r} is not produced by any layer above")
    try:
        out = rule(layer, [shapes[b] for b in layer.bottom])
    except (ValueError, IndexError) as e:
        raise UpcallError(f"{where}: {e}") from e
    bad = [s for s in out if any(d <= 0 for d in s)]
    if bad:
        bottoms = ", ".join(f"{b} {shapes[b]}" for b in layer.bottom)
        raise UpcallError(f"{where}: output shape {bad[0]} from {bottoms}: the input is too small")
    return out


def _data_tops(
    layer: caffe_pb2.LayerParameter, input_shapes: Mapping[str, Shape], where: str
) -> list[Shape]:
    if layer.top[0] not in input_shapes:
        raise UpcallError(f"{where}: no input shape given for top {layer.top[0]!r}")
    first = tuple(input_shapes[layer.top[0]])
    return [first] + [tuple(input_shapes.get(t, (first[0],))) for t in layer.top[1:]]


def cost(net: caffe_pb2.NetParameter, shapes: Mapping[str, Shape]) -> tuple[int, int]:
    """``(multiply-adds per image, learned parameters)`` of a net's Convolution, InnerProduct and
    Scale layers, given its blob shapes (from :func:`infer_shapes` on a batch-1 deploy net)."""
    macs = params = 0
    for layer in net.layer:
        if not all(b in shapes for b in (*layer.bottom, *layer.top)):
            continue  # a layer only real Caffe runs (infer_shapes(lenient=True)) or after one
        if layer.type == "Convolution":
            p = layer.convolution_param
            kh, kw = pair(p, "kernel_size", 0)
            fan_in = shapes[layer.bottom[0]][1] // p.group * kh * kw
            out = shapes[layer.top[0]]
            macs += fan_in * out[1] * out[2] * out[3]
            params += fan_in * p.num_output + (p.num_output if p.bias_term else 0)
        elif layer.type == "InnerProduct":
            p = layer.inner_product_param
            fan_in = 1
            for d in shapes[layer.bottom[0]][_axis(p.axis, len(shapes[layer.bottom[0]])) :]:
                fan_in *= d
            macs += fan_in * p.num_output
            params += fan_in * p.num_output + (p.num_output if p.bias_term else 0)
        elif layer.type == "Scale":
            params += shapes[layer.bottom[0]][1] * (2 if layer.scale_param.bias_term else 1)
    return macs, params
