"""AlexNet as DIGITS ships it (standard network "alexnet"), for one-channel spectrograms.

Layer names, fillers and lr/decay multipliers are DIGITS's; rules use DIGITS's stages
(train / val / deploy), which :mod:`upcall.network.zoo.prepare` turns into phase rules. fc8's
``num_output`` is left unset: DIGITS sets it to the number of classes.
"""

from __future__ import annotations

from upcall.network import build as ns
from upcall.proto import caffe_pb2

CROP = 227  # AlexNet's input: 227 → conv1 55 → pool1 27 → pool2 13 → pool5 6


def alexnet(*, train_batch: int = 100, val_batch: int = 100) -> caffe_pb2.NetParameter:
    """DIGITS's AlexNet with stage rules and unset classifier width.

    The default batch sizes 100/100 are those of DIGITS 3.0 (the version the whale tutorial
    ran, "network defaults"): they give the tutorial's 270 iterations per epoch. Current DIGITS
    ships 128/32.
    """
    g01, g005 = ns.gaussian(0.01), ns.gaussian(0.005)
    c0, c01 = ns.constant(0), ns.constant(0.1)
    layers = [
        ns.include(
            ns.data("train-data", batch_size=train_batch, crop=CROP, mirror=True), stage="train"
        ),
        ns.include(ns.data("val-data", batch_size=val_batch, crop=CROP), stage="val"),
        ns.conv("conv1", "data", 96, kernel=11, stride=4, weight_filler=g01, bias_filler=c0),
        ns.relu("relu1", "conv1"),
        ns.lrn("norm1", "conv1"),
        ns.pool("pool1", "norm1", kernel=3, stride=2),
        ns.conv(
            "conv2", "pool1", 256, kernel=5, pad=2, group=2, weight_filler=g01, bias_filler=c01
        ),
        ns.relu("relu2", "conv2"),
        ns.lrn("norm2", "conv2"),
        ns.pool("pool2", "norm2", kernel=3, stride=2),
        ns.conv("conv3", "pool2", 384, kernel=3, pad=1, weight_filler=g01, bias_filler=c0),
        ns.relu("relu3", "conv3"),
        ns.conv(
            "conv4", "conv3", 384, kernel=3, pad=1, group=2, weight_filler=g01, bias_filler=c01
        ),
        ns.relu("relu4", "conv4"),
        ns.conv(
            "conv5", "conv4", 256, kernel=3, pad=1, group=2, weight_filler=g01, bias_filler=c01
        ),
        ns.relu("relu5", "conv5"),
        ns.pool("pool5", "conv5", kernel=3, stride=2),
        ns.ip("fc6", "pool5", 4096, weight_filler=g005, bias_filler=c01),
        ns.relu("relu6", "fc6"),
        ns.dropout("drop6", "fc6"),
        ns.ip("fc7", "fc6", 4096, weight_filler=g005, bias_filler=c01),
        ns.relu("relu7", "fc7"),
        ns.dropout("drop7", "fc7"),
        ns.ip("fc8", "fc7", weight_filler=g01, bias_filler=c0),
        ns.include(ns.accuracy("accuracy", ["fc8", "label"]), stage="val"),
        ns.exclude(ns.softmax_loss("loss", ["fc8", "label"]), stage="deploy"),
        ns.include(ns.softmax("softmax", "fc8"), stage="deploy"),
    ]
    return ns.net("AlexNet", layers)
