"""A small net-spec builder: functions that return Caffe ``LayerParameter`` messages.

Networks are written as Python calls over our protobuf schema (never string templates) and
serialised with :func:`upcall.proto.to_text`. Layer functions take the layer's name and its
bottom(s) first; in-place layers (ReLU, Dropout, BatchNorm, Scale) write to their bottom, as in
Caffe's own model zoo.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from upcall.proto import caffe_pb2

Layer = caffe_pb2.LayerParameter
Size = int | tuple[int, int]  # one value for both axes, or (h, w)

__all__ = [
    "accuracy",
    "batch_norm",
    "concat",
    "constant",
    "conv",
    "data",
    "dropout",
    "eltwise_sum",
    "exclude",
    "gaussian",
    "include",
    "input_layer",
    "ip",
    "log",
    "lrn",
    "net",
    "pool",
    "reduction",
    "relu",
    "scale",
    "softmax",
    "softmax_loss",
    "xavier",
]


# --- fillers ----------------------------------------------------------------------------------
def constant(value: float = 0.0) -> caffe_pb2.FillerParameter:
    return caffe_pb2.FillerParameter(type="constant", value=value)


def gaussian(std: float) -> caffe_pb2.FillerParameter:
    return caffe_pb2.FillerParameter(type="gaussian", std=std)


def xavier(std: float | None = None) -> caffe_pb2.FillerParameter:
    # Caffe's xavier ignores std; BVLC GoogLeNet writes it anyway, and we keep its text as it is.
    f = caffe_pb2.FillerParameter(type="xavier")
    if std is not None:
        f.std = std
    return f


# --- rules ------------------------------------------------------------------------------------
def _rule(phase: str | None, stage: str | None) -> caffe_pb2.NetStateRule:
    r = caffe_pb2.NetStateRule()
    if phase is not None:
        r.phase = caffe_pb2.Phase.Value(phase)
    if stage is not None:
        r.stage.append(stage)
    return r


def include(layer: Layer, *, phase: str | None = None, stage: str | None = None) -> Layer:
    """Add ``include { phase: … stage: … }`` to ``layer`` and return it."""
    layer.include.append(_rule(phase, stage))
    return layer


def exclude(layer: Layer, *, phase: str | None = None, stage: str | None = None) -> Layer:
    """Add ``exclude { phase: … stage: … }`` to ``layer`` and return it."""
    layer.exclude.append(_rule(phase, stage))
    return layer


# --- layers -----------------------------------------------------------------------------------
def _layer(name: str, type_: str, bottoms: Iterable[str], tops: Iterable[str]) -> Layer:
    return Layer(name=name, type=type_, bottom=list(bottoms), top=list(tops))


def _params(layer: Layer, lr_mults: Sequence[float], decay_mults: Sequence[float]) -> None:
    for lr, decay in zip(lr_mults, decay_mults, strict=True):
        layer.param.add(lr_mult=lr, decay_mult=decay)


def _hw(value: Size) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


def _set_hw(msg, field: str, value: Size, *, default: int | None = None) -> None:
    """Write a square size as Caffe's repeated ``field`` and a rectangular one as ``field_h/_w``."""
    h, w = _hw(value)
    if h == w:
        if h != default:
            getattr(msg, field).append(h)
    else:
        setattr(msg, f"{field.removesuffix('_size')}_h", h)
        setattr(msg, f"{field.removesuffix('_size')}_w", w)


def conv(
    name: str,
    bottom: str,
    num_output: int,
    *,
    kernel: Size,
    stride: Size = 1,
    pad: Size = 0,
    group: int = 1,
    dilation: int = 1,
    weight_filler: caffe_pb2.FillerParameter | None = None,
    bias_filler: caffe_pb2.FillerParameter | None = None,
    bias_term: bool = True,
    lr_mults: Sequence[float] = (1, 2),
    decay_mults: Sequence[float] = (1, 0),
    top: str | None = None,
) -> Layer:
    """A Convolution layer; ``lr_mults``/``decay_mults`` give one ParamSpec per blob."""
    layer = _layer(name, "Convolution", [bottom], [top or name])
    n = 2 if bias_term else 1
    _params(layer, lr_mults[:n], decay_mults[:n])
    p = layer.convolution_param
    p.num_output = num_output
    if not bias_term:
        p.bias_term = False
    _set_hw(p, "pad", pad, default=0)
    _set_hw(p, "kernel_size", kernel)
    _set_hw(p, "stride", stride, default=1)
    if dilation != 1:
        p.dilation.append(dilation)
    if group != 1:
        p.group = group
    if weight_filler is not None:
        p.weight_filler.CopyFrom(weight_filler)
    if bias_term and bias_filler is not None:
        p.bias_filler.CopyFrom(bias_filler)
    return layer


def ip(
    name: str,
    bottom: str,
    num_output: int | None = None,
    *,
    weight_filler: caffe_pb2.FillerParameter | None = None,
    bias_filler: caffe_pb2.FillerParameter | None = None,
    lr_mults: Sequence[float] = (1, 2),
    decay_mults: Sequence[float] = (1, 0),
    top: str | None = None,
) -> Layer:
    """An InnerProduct layer; ``num_output=None`` leaves it unset for DIGITS to fill with #classes."""
    layer = _layer(name, "InnerProduct", [bottom], [top or name])
    _params(layer, lr_mults, decay_mults)
    p = layer.inner_product_param
    if num_output is not None:
        p.num_output = num_output
    if weight_filler is not None:
        p.weight_filler.CopyFrom(weight_filler)
    if bias_filler is not None:
        p.bias_filler.CopyFrom(bias_filler)
    return layer


def relu(name: str, bottom: str) -> Layer:
    return _layer(name, "ReLU", [bottom], [bottom])


def lrn(
    name: str,
    bottom: str,
    *,
    local_size: int = 5,
    alpha: float = 1e-4,
    beta: float = 0.75,
    top: str | None = None,
) -> Layer:
    layer = _layer(name, "LRN", [bottom], [top or name])
    layer.lrn_param.local_size = local_size
    layer.lrn_param.alpha = alpha
    layer.lrn_param.beta = beta
    return layer


def pool(
    name: str,
    bottom: str,
    *,
    method: str = "MAX",
    kernel: Size | None = None,
    stride: Size = 1,
    pad: Size = 0,
    global_pool: bool = False,
    top: str | None = None,
) -> Layer:
    """A Pooling layer (Caffe's ceil rounding); ``global_pool`` pools the whole map."""
    layer = _layer(name, "Pooling", [bottom], [top or name])
    p = layer.pooling_param
    p.pool = caffe_pb2.PoolingParameter.PoolMethod.Value(method)
    if global_pool:
        p.global_pooling = True
        return layer
    if kernel is None:
        raise ValueError(f"pooling layer {name!r} needs a kernel (or global_pool=True)")
    kh, kw = _hw(kernel)
    sh, sw = _hw(stride)
    if kh == kw:
        p.kernel_size = kh
    else:
        p.kernel_h, p.kernel_w = kh, kw
    if sh == sw:
        p.stride = sh
    else:
        p.stride_h, p.stride_w = sh, sw
    ph, pw = _hw(pad)
    if ph == pw:
        if ph:
            p.pad = ph
    else:
        p.pad_h, p.pad_w = ph, pw
    return layer


def dropout(name: str, bottom: str, ratio: float = 0.5) -> Layer:
    layer = _layer(name, "Dropout", [bottom], [bottom])
    layer.dropout_param.dropout_ratio = ratio
    return layer


def concat(name: str, bottoms: Sequence[str], *, top: str | None = None) -> Layer:
    return _layer(name, "Concat", bottoms, [top or name])


def eltwise_sum(
    name: str,
    bottoms: Sequence[str],
    *,
    coeffs: Sequence[float] = (),
    top: str | None = None,
) -> Layer:
    """Eltwise SUM of the bottoms (a residual connection), each times its ``coeffs`` if given."""
    layer = _layer(name, "Eltwise", bottoms, [top or name])
    if coeffs:
        layer.eltwise_param.coeff.extend(coeffs)
    return layer


def batch_norm(name: str, bottom: str) -> Layer:
    """In-place BatchNorm; its three statistics blobs are not learned (lr_mult 0, as Caffe needs)."""
    layer = _layer(name, "BatchNorm", [bottom], [bottom])
    _params(layer, (0, 0, 0), (0, 0, 0))
    return layer


def scale(name: str, bottom: str, *, bias_term: bool = True) -> Layer:
    """In-place Scale (γ, and β when ``bias_term``): the learned half of Caffe's batch norm."""
    layer = _layer(name, "Scale", [bottom], [bottom])
    layer.scale_param.bias_term = bias_term
    return layer


def softmax(name: str, bottom: str, *, top: str | None = None) -> Layer:
    return _layer(name, "Softmax", [bottom], [top or name])


def log(name: str, bottom: str, *, top: str | None = None) -> Layer:
    """Caffe's Log layer: the natural logarithm of each value (base e, scale 1, shift 0)."""
    return _layer(name, "Log", [bottom], [top or name])


def reduction(
    name: str,
    bottom: str,
    *,
    operation: str = "SUM",
    axis: int = 0,
    coeff: float = 1.0,
    top: str | None = None,
    loss_weight: float | None = None,
) -> Layer:
    """Caffe's Reduction over the axes from ``axis`` on (0: to one number), times ``coeff``."""
    layer = _layer(name, "Reduction", [bottom], [top or name])
    r = layer.reduction_param
    r.operation = caffe_pb2.ReductionParameter.ReductionOp.Value(operation)
    if axis:
        r.axis = axis
    if coeff != 1.0:
        r.coeff = coeff
    if loss_weight is not None:
        layer.loss_weight.append(loss_weight)
    return layer


def softmax_loss(
    name: str, bottoms: Sequence[str], *, top: str = "loss", loss_weight: float | None = None
) -> Layer:
    layer = _layer(name, "SoftmaxWithLoss", bottoms, [top])
    if loss_weight is not None:
        layer.loss_weight.append(loss_weight)
    return layer


def infogain_loss(
    name: str, bottoms: Sequence[str], *, source: str, top: str = "loss", axis: int = 1
) -> Layer:
    """Caffe's InfogainLoss on raw scores (it applies its own softmax, as SoftmaxWithLoss does):
    the loss of a sample of class y is -sum_k H[y, k] log p_k, H read from ``source``."""
    layer = _layer(name, "InfogainLoss", bottoms, [top])
    layer.infogain_loss_param.source = source
    if axis != 1:
        layer.infogain_loss_param.axis = axis
    return layer


def accuracy(name: str, bottoms: Sequence[str], *, top: str = "accuracy", top_k: int = 1) -> Layer:
    layer = _layer(name, "Accuracy", bottoms, [top])
    if top_k != 1:
        layer.accuracy_param.top_k = top_k
    return layer


def data(
    name: str,
    *,
    batch_size: int,
    crop: int = 0,
    mirror: bool = False,
    source: str = "",
    mean_file: str = "",
    tops: Sequence[str] = ("data", "label"),
) -> Layer:
    """A Data layer over an LMDB; source and mean are usually filled in later (DIGITS does so)."""
    layer = _layer(name, "Data", [], tops)
    t = layer.transform_param
    if mirror:
        t.mirror = True
    if crop:
        t.crop_size = crop
    if mean_file:
        t.mean_file = mean_file
    d = layer.data_param
    if source:
        d.source = source
        d.backend = caffe_pb2.DataParameter.LMDB
    d.batch_size = batch_size
    return layer


def input_layer(name: str, shape: Sequence[int], *, top: str = "data") -> Layer:
    layer = _layer(name, "Input", [], [top])
    layer.input_param.shape.add(dim=list(shape))
    return layer


def net(name: str, layers: Iterable[Layer]) -> caffe_pb2.NetParameter:
    return caffe_pb2.NetParameter(name=name, layer=list(layers))
