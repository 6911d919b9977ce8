"""Turn a DIGITS-style network into train_val and deploy nets for one dataset, as DIGITS does.

DIGITS (digits/model/tasks/caffe_train.py) cleans a classification network (Input layers out,
Accuracy layers with top_k > #classes out, unset InnerProduct widths = #classes), evaluates
every layer against the NetStates train (TRAIN, stage "train"), val (TEST, "val") and deploy
(TEST, "deploy"), writes train_val with the stage rules rewritten as phase rules (so plain
``caffe train`` runs it) and deploy with no rules and a 1×C×H×W input; then it points the Data
layers at the dataset's LMDBs and mean image and applies the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

from upcall.errors import UpcallError
from upcall.network import build as ns
from upcall.network.phase import layer_included
from upcall.network.shapes import infer_shapes, require_supported
from upcall.proto import caffe_pb2

TRAIN_STATE = caffe_pb2.NetState(phase=caffe_pb2.TRAIN, stage=["train"])
VAL_STATE = caffe_pb2.NetState(phase=caffe_pb2.TEST, stage=["val"])
DEPLOY_STATE = caffe_pb2.NetState(phase=caffe_pb2.TEST, stage=["deploy"])
DEFAULT_BATCH_SIZE = 16  # DIGITS's constant when neither the form nor the network sets one

__all__ = ["DataSource", "prepare"]


@dataclass(frozen=True)
class DataSource:
    """What DIGITS fills into a network from a dataset (paths as they go into the prototxt)."""

    train_db: str
    val_db: str | None  # None: a dataset without validation images
    mean_file: str
    channels: int
    height: int
    width: int
    num_classes: int
    description: str  # for messages: "129×30 (native)"


def _cleaned(network: caffe_pb2.NetParameter, num_classes: int) -> caffe_pb2.NetParameter:
    net = caffe_pb2.NetParameter()
    net.CopyFrom(network)
    del net.layer[:]
    for layer in network.layer:
        if layer.type == "Input":
            continue
        if layer.type == "Accuracy" and layer.accuracy_param.top_k > num_classes:
            continue  # Caffe aborts: "top_k must be less than or equal to the number of classes"
        new = net.layer.add()
        new.CopyFrom(layer)
        if new.type == "InnerProduct" and not new.inner_product_param.HasField("num_output"):
            new.inner_product_param.num_output = num_classes
    del net.input[:], net.input_shape[:], net.input_dim[:]
    return net


def _fill_time_pools(
    net: caffe_pb2.NetParameter, data: DataSource, where: str, lenient: bool
) -> None:
    """Give each Pooling layer written with ``kernel_h: 1`` and no ``kernel_w`` (WhaleNet's pool
    over time) the width of its input, so it spans the whole time axis of this dataset's images."""
    for i, layer in enumerate(net.layer):
        p = layer.pooling_param
        if layer.type != "Pooling" or p.global_pooling or p.kernel_h != 1 or p.HasField("kernel_w"):
            continue
        before = caffe_pb2.NetParameter()
        before.layer.extend(net.layer[:i])
        inputs = {
            d.top[0]: (1, data.channels, data.height, data.width)
            for d in before.layer
            if d.type == "Data"
        }
        try:
            shapes = infer_shapes(before, inputs, lenient=lenient)  # both data layers alike
        except UpcallError as e:
            raise UpcallError(f"{where}: {e}") from None
        if layer.bottom[0] not in shapes:
            raise UpcallError(f"{where}: pooling layer {layer.name!r} needs kernel_w")
        p.kernel_w = shapes[layer.bottom[0]][3]


def _train_val(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    out = caffe_pb2.NetParameter(name=net.name)
    for layer in net.layer:
        train, val = layer_included(layer, TRAIN_STATE), layer_included(layer, VAL_STATE)
        if not (train or val):
            continue
        new = out.layer.add()
        new.CopyFrom(layer)
        del new.include[:], new.exclude[:]
        if train != val:
            ns.include(new, phase="TRAIN" if train else "TEST")
    return out


def _configure_data(
    net: caffe_pb2.NetParameter, data: DataSource, batch_size: int | None, where: str
) -> int:
    """Point Data layers at the dataset; return the deploy crop (0 = whole image)."""
    crops = {}
    for layer in net.layer:
        if layer.type != "Data":
            continue
        if len(layer.include) != 1:
            raise UpcallError(
                f"{where}: data layer {layer.name!r} is not specific to train or "
                f'val (give it a stage "train"/"val" or phase rule)'
            )
        phase = layer.include[0].phase
        d, t = layer.data_param, layer.transform_param
        d.source = data.train_db if phase == caffe_pb2.TRAIN else data.val_db or ""  # or: dropped
        d.backend = caffe_pb2.DataParameter.LMDB
        d.batch_size = batch_size or d.batch_size or DEFAULT_BATCH_SIZE
        t.mean_file = data.mean_file
        del t.mean_value[:]
        if t.crop_size > min(data.height, data.width):
            raise UpcallError(
                f"{where} needs images of at least {t.crop_size}×{t.crop_size}; this dataset is "
                f"{data.description}: rebuild it with `upcall lmdb LISTS --size 256x256`"
            )
        crops[phase] = t.crop_size
    if set(crops) != {caffe_pb2.TRAIN, caffe_pb2.TEST}:
        raise UpcallError(f"{where}: needs one train and one val Data layer")
    if data.val_db is None:  # DIGITS: no validation set, no val Data layer (and no test pass)
        for i in reversed(range(len(net.layer))):
            if net.layer[i].type == "Data" and net.layer[i].include[0].phase == caffe_pb2.TEST:
                del net.layer[i]
    return crops[caffe_pb2.TEST]


def _deploy(
    net: caffe_pb2.NetParameter, train_val: caffe_pb2.NetParameter, shape: list[int], where: str
) -> caffe_pb2.NetParameter:
    """Deploy layers with their rules removed, fed by an Input layer; keeps what "data" reaches."""
    out = ns.net(net.name, [ns.input_layer("data", shape)])
    have = {"data"}
    for layer in net.layer:
        if layer.type == "Data" or not layer_included(layer, DEPLOY_STATE):
            continue
        if not all(b in have for b in layer.bottom):
            continue  # e.g. a loss that needs "label": no labels at deploy time
        new = out.layer.add()
        new.CopyFrom(layer)
        del new.include[:], new.exclude[:]
        have.update(layer.top)
    if not any(layer.type == "Softmax" for layer in out.layer):
        # A plain Caffe train_val has no deploy stage: read the scores the main loss reads.
        losses = [x for x in train_val.layer if x.type == "SoftmaxWithLoss" and x.bottom[0] in have]
        if not losses:
            raise UpcallError(
                f"{where}: no Softmax layer for deploy and no SoftmaxWithLoss to derive one from"
            )
        out.layer.append(ns.softmax("softmax", losses[-1].bottom[0]))
    return out


def prepare(
    network: caffe_pb2.NetParameter,
    data: DataSource,
    *,
    batch_size: int | None = None,
    where: str = "network",
    engine: str = "torch",
) -> tuple[caffe_pb2.NetParameter, caffe_pb2.NetParameter]:
    """``(train_val, deploy)`` for ``network`` on ``data``; ``batch_size`` overrides both phases.

    ``where`` names the network in errors. Shapes are checked for every phase, so a network the
    dataset's images are too small for fails here, naming the layer, not later in Caffe.
    ``engine`` "torch" refuses a layer the torch engine does not implement; with another engine
    (real Caffe runs the net) such a layer, and what follows from it, is left to Caffe to check.
    """
    net = _cleaned(network, data.num_classes)
    lenient = engine != "torch"
    for layer in net.layer if not lenient else ():
        try:
            require_supported(layer)
        except UpcallError as e:
            raise UpcallError(f"{where}: {e}") from None
    _fill_time_pools(net, data, where, lenient)
    train_val = _train_val(net)
    crop = _configure_data(train_val, data, batch_size, where)
    h, w = (crop, crop) if crop else (data.height, data.width)
    deploy = _deploy(net, train_val, [1, data.channels, h, w], where)
    for layer in (x for x in train_val.layer if x.type == "Data"):
        c = layer.transform_param.crop_size
        size = (c, c) if c else (data.height, data.width)
        inputs = {layer.top[0]: (layer.data_param.batch_size, data.channels, *size)}
        _check(train_val, inputs, layer.include[0].phase, where, lenient)
    _check(deploy, {}, None, where, lenient)
    return train_val, deploy


def _check(
    net: caffe_pb2.NetParameter, inputs: dict, phase: int | None, where: str, lenient: bool
) -> None:
    try:
        infer_shapes(net, inputs, phase=phase, lenient=lenient)
    except UpcallError as e:
        raise UpcallError(f"{where}: {e}") from None
