"""Old-format Caffe nets and solvers brought to today's format by the rules real Caffe applies
to every net and solver it reads (upgrade_proto, as the Caffe root's build has it, which its
upgrade_net_proto_text and upgrade_solver_proto_text tools confirm), so a 2015 prototxt loads.

In Caffe's order: a V0 net (``layers { layer { type: "conv" kernelsize: 5 } }``, padding layers
folded into the layer after them) becomes V1; a V1 data layer's scale, mean file, crop and mirror
move to ``transform_param``; a V1 net (``layers { type: CONVOLUTION blobs_lr: 1 }``) becomes
today's (``layer { type: "Convolution" param { lr_mult: 1 } }``); the net's ``input`` /
``input_dim`` / ``input_shape`` become an Input layer named "input"; a BatchNorm layer's three
param specs get lr_mult and decay_mult 0. A solver's ``solver_type`` enum becomes its ``type``
string. :func:`read_net` and :func:`read_solver` are how upcall reads a net or solver prototxt.
"""

from __future__ import annotations

import os

from google.protobuf.descriptor import FieldDescriptor

from upcall.errors import UpcallError
from upcall.proto import caffe_pb2, read_text

V1 = caffe_pb2.V1LayerParameter

# V1's LayerType enum -> today's type string (NONE -> "")
V1_TYPES = {
    "NONE": "",
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DATA": "Data",
    "DECONVOLUTION": "Deconvolution",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

# V0's type strings -> V1's LayerType (Caffe refuses any other)
V0_TYPES = {
    "accuracy": "ACCURACY",
    "bnll": "BNLL",
    "concat": "CONCAT",
    "conv": "CONVOLUTION",
    "data": "DATA",
    "dropout": "DROPOUT",
    "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN",
    "hdf5_data": "HDF5_DATA",
    "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL",
    "images": "IMAGE_DATA",
    "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT",
    "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS",
    "pool": "POOLING",
    "relu": "RELU",
    "sigmoid": "SIGMOID",
    "softmax": "SOFTMAX",
    "softmax_loss": "SOFTMAX_LOSS",
    "split": "SPLIT",
    "tanh": "TANH",
    "window_data": "WINDOW_DATA",
}


def _v0_targets() -> dict[str, dict[str, str]]:
    """A V0 layer's own field -> {V0 type: "v1_param_message.field"}: where V1 keeps it."""
    conv, ip, pool = "convolution_param", "inner_product_param", "pooling_param"
    data = {"data": "data_param", "images": "image_data_param", "window_data": "window_data_param"}
    out = {
        "num_output": {"conv": f"{conv}.num_output", "innerproduct": f"{ip}.num_output"},
        "biasterm": {"conv": f"{conv}.bias_term", "innerproduct": f"{ip}.bias_term"},
        "weight_filler": {"conv": f"{conv}.weight_filler", "innerproduct": f"{ip}.weight_filler"},
        "bias_filler": {"conv": f"{conv}.bias_filler", "innerproduct": f"{ip}.bias_filler"},
        "pad": {"conv": f"{conv}.pad", "pool": f"{pool}.pad"},
        "kernelsize": {"conv": f"{conv}.kernel_size", "pool": f"{pool}.kernel_size"},
        "stride": {"conv": f"{conv}.stride", "pool": f"{pool}.stride"},
        "group": {"conv": f"{conv}.group"},
        "pool": {"pool": f"{pool}.pool"},
        "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
        "source": {
            **{t: f"{m}.source" for t, m in data.items()},
            "hdf5_data": "hdf5_data_param.source",
            "infogain_loss": "infogain_loss_param.source",
        },
        "batchsize": {
            **{t: f"{m}.batch_size" for t, m in data.items()},
            "hdf5_data": "hdf5_data_param.batch_size",
        },
        "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
        "shuffle_images": {"images": "image_data_param.shuffle"},
        "new_height": {"images": "image_data_param.new_height"},
        "new_width": {"images": "image_data_param.new_width"},
        "concat_dim": {"concat": "concat_param.concat_dim"},
        "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
    }
    for v0, v1 in [("scale", "scale"), ("meanfile", "mean_file")]:
        out[v0] = {t: f"{m}.{v1}" for t, m in data.items()}
    for v0, v1 in [("cropsize", "crop_size"), ("mirror", "mirror")]:
        out[v0] = {t: f"{m}.{v1}" for t, m in data.items()}
    for name in ("local_size", "alpha", "beta", "k"):
        out[name] = {"lrn": f"lrn_param.{name}"}
    for v0, v1 in [
        ("det_fg_threshold", "fg_threshold"),
        ("det_bg_threshold", "bg_threshold"),
        ("det_fg_fraction", "fg_fraction"),
        ("det_context_pad", "context_pad"),
        ("det_crop_mode", "crop_mode"),
    ]:
        out[v0] = {"window_data": f"window_data_param.{v1}"}
    return out


V0_TARGETS = _v0_targets()
V0_SAME = ("blobs", "blobs_lr", "weight_decay")  # kept on the V1 layer as they are
# The data layers whose deprecated transformation fields move to transform_param
DATA_TRANSFORMS = {"DATA": "data_param", "IMAGE_DATA": "image_data_param"}
DATA_TRANSFORMS["WINDOW_DATA"] = "window_data_param"
TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")

# solver_type enum -> the solver's type string
SOLVER_TYPES = {
    "SGD": "SGD",
    "NESTEROV": "Nesterov",
    "ADAGRAD": "AdaGrad",
    "RMSPROP": "RMSProp",
    "ADADELTA": "AdaDelta",
    "ADAM": "Adam",
}


def read_net(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """The net prototxt at ``path``, upgraded to today's format as real Caffe reads it."""
    net = read_text(path, caffe_pb2.NetParameter())
    upgrade_net(net, where=str(path))
    return net


def read_solver(path: str | os.PathLike) -> caffe_pb2.SolverParameter:
    """The solver prototxt at ``path``, upgraded as real Caffe reads it."""
    solver = read_text(path, caffe_pb2.SolverParameter())
    upgrade_solver(solver, where=str(path))
    return solver


def upgrade_net(net: caffe_pb2.NetParameter, *, where: str) -> list[str]:
    """Upgrade ``net`` in place; return what was upgraded (empty for a net already current).
    ``where`` (the file) starts the one-line error for a net Caffe cannot upgrade either."""
    done = []
    if any(v.HasField("layer") for v in net.layers):
        _v0_to_v1(net, where)
        done.append("V0 layers")
    if _move_data_transforms(net):
        done.append("data transformation fields")
    if net.layers:
        _v1_to_v2(net, where)
        done.append("V1 layers")
    if net.input:
        _inputs_to_layer(net, where)
        done.append("net inputs")
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            # The statistics are not learned: Caffe zeroes both multipliers, keeping the names
            if any(p.lr_mult or p.decay_mult for p in layer.param):
                done.append(f"BatchNorm '{layer.name}' param specs")
            for p in layer.param:
                p.lr_mult = p.decay_mult = 0
    return done


def upgrade_solver(solver: caffe_pb2.SolverParameter, *, where: str) -> list[str]:
    """Upgrade ``solver`` in place (``solver_type`` -> ``type``); return what was upgraded."""
    if not solver.HasField("solver_type"):
        return []
    if solver.HasField("type"):
        raise UpcallError(
            f"{where}: give the solver's type as `type` or as the old `solver_type`, not both"
        )
    name = caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)
    solver.type = SOLVER_TYPES[name]
    solver.ClearField("solver_type")
    return ["solver_type"]


# ---- V0 -> V1 ---------------------------------------------------------------------------------


def _v0_to_v1(net: caffe_pb2.NetParameter, where: str) -> None:
    old = _fold_padding(list(net.layers), where)
    del net.layers[:]
    for connection in old:
        v1 = net.layers.add(bottom=connection.bottom, top=connection.top)
        if connection.HasField("layer"):
            _v0_layer(connection.layer, v1, where)


def _fold_padding(layers: list[caffe_pb2.V1LayerParameter], where: str) -> list:
    """V0's padding layers dropped, their pad given to the conv or pool layer reading them."""
    producer: dict[str, caffe_pb2.V1LayerParameter] = {}
    out = []
    for connection in layers:
        kind = connection.layer.type
        if kind == "padding" and (len(connection.bottom), len(connection.top)) != (1, 1):
            raise UpcallError(
                f"{where}: padding layer '{connection.layer.name}' needs 1 bottom, 1 top"
            )
        new = V1()
        new.CopyFrom(connection)
        for j, bottom in enumerate(new.bottom):
            pad = producer.get(bottom)
            if pad is None or pad.layer.type != "padding":
                continue
            if kind not in ("conv", "pool"):
                raise UpcallError(
                    f"{where}: padding layer '{pad.layer.name}' feeds '{new.layer.name}' "
                    f"({kind}); only a conv or pool layer can take its padding"
                )
            new.bottom[j] = pad.bottom[0]
            new.layer.pad = pad.layer.pad
        for top in connection.top:
            producer[top] = connection
        if kind != "padding":
            out.append(new)
    return out


def _v0_layer(v0: caffe_pb2.V0LayerParameter, v1: caffe_pb2.V1LayerParameter, where: str) -> None:
    for field, value in v0.ListFields():
        name = field.name
        if name == "name":
            v1.name = value
        elif name == "type":
            if value not in V0_TYPES:
                raise UpcallError(f"{where}: V0 layer '{v0.name}' has the unknown type {value!r}")
            v1.type = V1.LayerType.Value(V0_TYPES[value])
        elif name in V0_SAME:
            getattr(v1, name).extend(value)
        elif v0.type in V0_TARGETS.get(name, {}):
            _set_path(v1, V0_TARGETS[name][v0.type], field, value)
        else:
            raise UpcallError(
                f"{where}: V0 layer '{v0.name}' (type {v0.type!r}) has '{name}', which Caffe "
                "cannot upgrade for that type"
            )


def _set_path(v1: caffe_pb2.V1LayerParameter, path: str, field: FieldDescriptor, value) -> None:
    message_name, _, name = path.partition(".")
    message = getattr(v1, message_name)
    if not name:
        message.CopyFrom(value)
        return
    target = message.DESCRIPTOR.fields_by_name[name]
    if target.is_repeated:
        getattr(message, name).append(value)
    elif target.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(message, name).CopyFrom(value)
    else:
        setattr(message, name, value)  # enums (pool method) share their numbers


# ---- V1 -> today ------------------------------------------------------------------------------


def _move_data_transforms(net: caffe_pb2.NetParameter) -> bool:
    moved = False
    for v1 in net.layers:
        kind = V1.LayerType.Name(v1.type)
        if kind not in DATA_TRANSFORMS:
            continue
        param = getattr(v1, DATA_TRANSFORMS[kind])
        for name in TRANSFORM_FIELDS:
            if param.HasField(name):
                setattr(v1.transform_param, name, getattr(param, name))
                param.ClearField(name)
                moved = True
    return moved


def _v1_to_v2(net: caffe_pb2.NetParameter, where: str) -> None:
    if net.layer:
        raise UpcallError(f"{where}: a net has `layer {{}}` or the old `layers {{}}`, not both")
    for v1 in net.layers:
        layer = net.layer.add()
        for field, value in v1.ListFields():
            _v1_field(layer, field.name, value, v1, where)
    del net.layers[:]


def _v1_field(layer: caffe_pb2.LayerParameter, name: str, value, v1, where: str) -> None:
    if name == "layer":
        raise UpcallError(f"{where}: layer '{v1.name}' mixes the V0 and V1 formats")
    if name == "type":
        layer.type = V1_TYPES[V1.LayerType.Name(value)]
    elif name == "name":
        layer.name = value
    elif name in ("bottom", "top", "blobs", "include", "exclude", "loss_weight"):
        getattr(layer, name).extend(value)
    elif name in ("param", "blob_share_mode", "blobs_lr", "weight_decay"):
        spec_field = {
            "param": "name",
            "blob_share_mode": "share_mode",
            "blobs_lr": "lr_mult",
            "weight_decay": "decay_mult",
        }[name]
        for i, item in enumerate(value):
            while len(layer.param) <= i:
                layer.param.add()
            setattr(layer.param[i], spec_field, item)
    else:  # one of the layer types' *_param messages, the same message today
        getattr(layer, name).CopyFrom(value)


def _inputs_to_layer(net: caffe_pb2.NetParameter, where: str) -> None:
    """The net's inputs as an Input layer first in the net; inputs without any shape (as in old
    .caffemodel files) are just dropped, as Caffe does."""
    inputs, shapes, dims = list(net.input), list(net.input_shape), list(net.input_dim)
    if shapes or dims:
        if (len(shapes) != len(inputs)) if shapes else (len(dims) != 4 * len(inputs)):
            raise UpcallError(
                f"{where}: inputs {inputs} need one input_shape or four input_dim each"
            )
        layer = caffe_pb2.LayerParameter(name="input", type="Input", top=inputs)
        if shapes:
            layer.input_param.shape.extend(shapes)
        else:
            for i in range(len(inputs)):
                layer.input_param.shape.add(dim=dims[4 * i : 4 * i + 4])
        rest = list(net.layer)
        del net.layer[:]
        net.layer.extend([layer, *rest])
    for name in ("input", "input_shape", "input_dim"):
        net.ClearField(name)
