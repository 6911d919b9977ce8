"""GoogLeNet as DIGITS ships it (standard network "googlenet"), for one-channel spectrograms.

BVLC's layer names and fillers, DIGITS's data layers (crop 224, batch 32 / 16) and stage rules.
The two auxiliary heads (loss1, loss2, weight 0.3) train with the main one and are dropped from
deploy. DIGITS's top-5 Accuracy layers are not written at all: with two classes Caffe aborts on
``top_k`` > #classes, and DIGITS removes them for such datasets anyway.
"""

from __future__ import annotations

from upcall.network import build as ns
from upcall.proto import caffe_pb2

CROP = 224  # 224 → conv1 112 → pool1 56 → pool2 28 → pool3 14 → pool4 7 → pool5 1

# (1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj) per inception module (Szegedy et al.).
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _conv_relu(
    name: str,
    bottom: str,
    n: int,
    *,
    kernel: int,
    std: float,
    pad: int = 0,
    stride: int = 1,
    relu: str,
) -> list[caffe_pb2.LayerParameter]:
    c = ns.conv(
        name,
        bottom,
        n,
        kernel=kernel,
        pad=pad,
        stride=stride,
        weight_filler=ns.xavier(std),
        bias_filler=ns.constant(0.2),
    )
    return [c, ns.relu(relu, name)]


def _inception(key: str, bottom: str) -> list[caffe_pb2.LayerParameter]:
    p = f"inception_{key}/"
    n1, n3r, n3, n5r, n5, npp = INCEPTION[key]
    return [
        *_conv_relu(p + "1x1", bottom, n1, kernel=1, std=0.03, relu=p + "relu_1x1"),
        *_conv_relu(p + "3x3_reduce", bottom, n3r, kernel=1, std=0.09, relu=p + "relu_3x3_reduce"),
        *_conv_relu(
            p + "3x3", p + "3x3_reduce", n3, kernel=3, pad=1, std=0.03, relu=p + "relu_3x3"
        ),
        *_conv_relu(p + "5x5_reduce", bottom, n5r, kernel=1, std=0.2, relu=p + "relu_5x5_reduce"),
        *_conv_relu(
            p + "5x5", p + "5x5_reduce", n5, kernel=5, pad=2, std=0.03, relu=p + "relu_5x5"
        ),
        ns.pool(p + "pool", bottom, kernel=3, stride=1, pad=1),
        *_conv_relu(p + "pool_proj", p + "pool", npp, kernel=1, std=0.1, relu=p + "relu_pool_proj"),
        ns.concat(p + "output", [p + "1x1", p + "3x3", p + "5x5", p + "pool_proj"]),
    ]


def _aux_head(k: int, bottom: str) -> list[caffe_pb2.LayerParameter]:
    """Auxiliary classifier k (1 or 2): trains with weight 0.3, never deployed."""
    p = f"loss{k}/"
    layers = [
        ns.pool(p + "ave_pool", bottom, method="AVE", kernel=5, stride=3),
        *_conv_relu(p + "conv", p + "ave_pool", 128, kernel=1, std=0.08, relu=p + "relu_conv"),
        ns.ip(
            p + "fc", p + "conv", 1024, weight_filler=ns.xavier(0.02), bias_filler=ns.constant(0.2)
        ),
        ns.relu(p + "relu_fc", p + "fc"),
        ns.dropout(p + "drop_fc", p + "fc", 0.7),
        ns.ip(
            p + "classifier",
            p + "fc",
            weight_filler=ns.xavier(0.0009765625),
            bias_filler=ns.constant(0),
        ),
        ns.softmax_loss(p + "loss", [p + "classifier", "label"], top=p + "loss", loss_weight=0.3),
        ns.include(
            ns.accuracy(p + "top-1", [p + "classifier", "label"], top=p + "accuracy"), stage="val"
        ),
    ]
    for layer in layers:
        if not layer.include:
            ns.exclude(layer, stage="deploy")
    return layers


def googlenet(*, train_batch: int = 32, val_batch: int = 16) -> caffe_pb2.NetParameter:
    """DIGITS's GoogLeNet with stage rules, without top-5 accuracy, classifier widths unset."""
    layers = [
        ns.include(
            ns.data("train-data", batch_size=train_batch, crop=CROP, mirror=True), stage="train"
        ),
        ns.include(ns.data("val-data", batch_size=val_batch, crop=CROP), stage="val"),
        *_conv_relu(
            "conv1/7x7_s2", "data", 64, kernel=7, stride=2, pad=3, std=0.1, relu="conv1/relu_7x7"
        ),
        ns.pool("pool1/3x3_s2", "conv1/7x7_s2", kernel=3, stride=2),
        ns.lrn("pool1/norm1", "pool1/3x3_s2"),
        *_conv_relu(
            "conv2/3x3_reduce", "pool1/norm1", 64, kernel=1, std=0.1, relu="conv2/relu_3x3_reduce"
        ),
        *_conv_relu(
            "conv2/3x3", "conv2/3x3_reduce", 192, kernel=3, pad=1, std=0.03, relu="conv2/relu_3x3"
        ),
        ns.lrn("conv2/norm2", "conv2/3x3"),
        ns.pool("pool2/3x3_s2", "conv2/norm2", kernel=3, stride=2),
        *_inception("3a", "pool2/3x3_s2"),
        *_inception("3b", "inception_3a/output"),
        ns.pool("pool3/3x3_s2", "inception_3b/output", kernel=3, stride=2),
        *_inception("4a", "pool3/3x3_s2"),
        *_aux_head(1, "inception_4a/output"),
        *_inception("4b", "inception_4a/output"),
        *_inception("4c", "inception_4b/output"),
        *_inception("4d", "inception_4c/output"),
        *_aux_head(2, "inception_4d/output"),
        *_inception("4e", "inception_4d/output"),
        ns.pool("pool4/3x3_s2", "inception_4e/output", kernel=3, stride=2),
        *_inception("5a", "pool4/3x3_s2"),
        *_inception("5b", "inception_5a/output"),
        ns.pool("pool5/7x7_s1", "inception_5b/output", method="AVE", kernel=7, stride=1),
        ns.dropout("pool5/drop_7x7_s1", "pool5/7x7_s1", 0.4),
        ns.ip(
            "loss3/classifier",
            "pool5/7x7_s1",
            weight_filler=ns.xavier(),
            bias_filler=ns.constant(0),
        ),
        ns.exclude(
            ns.softmax_loss("loss3/loss", ["loss3/classifier", "label"], top="loss", loss_weight=1),
            stage="deploy",
        ),
        ns.include(ns.accuracy("loss3/top-1", ["loss3/classifier", "label"]), stage="val"),
        ns.include(ns.softmax("softmax", "loss3/classifier"), stage="deploy"),
    ]
    return ns.net("GoogLeNet", layers)
