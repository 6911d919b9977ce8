"""Caffe's shape arithmetic against hand-computed values and torch's ceil-mode pooling."""

from __future__ import annotations

import itertools

import pytest
import torch

from upcall.errors import UpcallError
from upcall.network import build as ns
from upcall.network.shapes import SUPPORTED_TYPES, conv_out, cost, infer_shapes, pair, pool_out
from upcall.proto import caffe_pb2


def test_alexnet_chain_by_hand():
    assert conv_out(227, kernel=11, stride=4) == 55
    assert pool_out(55, kernel=3, stride=2) == 27
    assert pool_out(27, kernel=3, stride=2) == 13
    assert pool_out(13, kernel=3, stride=2) == 6


def test_googlenet_pool1_rounds_up():
    assert conv_out(224, kernel=7, stride=2, pad=3) == 112
    assert pool_out(112, kernel=3, stride=2) == 56  # floor would give 55
    assert pool_out(112, kernel=3, stride=2, ceil=False) == 55


def test_conv_dilation_and_padding():
    assert conv_out(30, kernel=3, pad=1) == 30
    assert conv_out(30, kernel=3, dilation=2) == 26  # effective kernel 5
    assert conv_out(10, kernel=3, stride=2, pad=1, dilation=3) == 3


def test_padded_pool_clips_last_window():
    # ceil((5 + 2 - 2) / 2) + 1 = 4, but window 4 would start at 6 = 5 + pad: in the padding.
    assert pool_out(5, kernel=2, stride=2, pad=1) == 3


@pytest.mark.parametrize("size", range(5, 26, 3))
def test_pool_matches_torch_ceil_mode(size):
    for kernel, stride, pad in itertools.product((2, 3, 5), (1, 2, 3), (0, 1, 2)):
        if stride > kernel or pad > kernel // 2:
            continue  # torch rejects pad > k/2; Caffe's pad=0, stride>kernel case is unclipped
        expected = torch.nn.MaxPool2d(kernel, stride, pad, ceil_mode=True)(
            torch.zeros(1, 1, size, size)
        ).shape[-1]
        assert pool_out(size, kernel=kernel, stride=stride, pad=pad) == expected, (
            kernel,
            stride,
            pad,
        )


def _tiny_net() -> caffe_pb2.NetParameter:
    return ns.net(
        "tiny",
        [
            ns.data("d", batch_size=4),
            ns.conv("c1", "data", 6, kernel=(3, 5), pad=(1, 2)),
            ns.batch_norm("bn", "c1"),
            ns.scale("sc", "c1"),
            ns.relu("r", "c1"),
            ns.pool("p1", "c1", kernel=2, stride=2),
            ns.conv("c2", "p1", 4, kernel=1, group=2),
            ns.concat("cat", ["p1", "c2"]),
            ns.pool("gp", "cat", method="AVE", global_pool=True),
            ns.ip("fc", "gp", 3),
            ns.dropout("dr", "fc"),
            ns.softmax("prob", "fc"),
            ns.softmax_loss("loss", ["fc", "label"]),
            ns.accuracy("acc", ["fc", "label"]),
        ],
    )


def test_infer_shapes_walks_every_layer():
    shapes = infer_shapes(_tiny_net(), {"data": (4, 2, 9, 7)})
    assert shapes == {
        "data": (4, 2, 9, 7),
        "label": (4,),
        "c1": (4, 6, 9, 7),
        "p1": (4, 6, 5, 4),
        "c2": (4, 4, 5, 4),
        "cat": (4, 10, 5, 4),
        "gp": (4, 10, 1, 1),
        "fc": (4, 3),
        "prob": (4, 3),
        "loss": (),
        "accuracy": (),
    }


def test_flatten_eltwise_and_input():
    net = ns.net("x", [ns.input_layer("in", (2, 3, 4, 5))])
    flat = net.layer.add(name="f", type="Flatten", bottom=["data"], top=["flat"])
    flat.flatten_param.axis = 2
    net.layer.add(name="e", type="Eltwise", bottom=["data", "data"], top=["sum"])
    assert infer_shapes(net, {}) == {"data": (2, 3, 4, 5), "flat": (2, 3, 20), "sum": (2, 3, 4, 5)}


def test_phase_filter_picks_one_data_layer():
    net = ns.net(
        "x",
        [
            ns.include(ns.data("train", batch_size=8), phase="TRAIN"),
            ns.include(ns.data("val", batch_size=2), phase="TEST"),
            ns.ip("fc", "data", 2),
        ],
    )
    assert infer_shapes(net, {"data": (2, 1, 3, 3)}, phase=caffe_pb2.TEST)["fc"] == (2, 2)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            caffe_pb2.LayerParameter(name="s", type="LSTM", bottom=["data"], top=["a"]),
            "layer 's' (type LSTM) is not implemented by the torch engine",
        ),
        (
            caffe_pb2.LayerParameter(name="r", type="ReLU", bottom=["nope"], top=["nope"]),
            "bottom blob 'nope' is not produced",
        ),
        (ns.pool("p", "data", kernel=3, stride=2), None),
        (ns.conv("c", "data", 4, kernel=7), "output shape (1, 4, -1, -1)"),
    ],
)
def test_errors_name_the_layer(layer, message):
    net = ns.net("x", [ns.input_layer("in", (1, 1, 5, 5)), layer])
    if message is None:
        assert infer_shapes(net, {})["p"] == (1, 1, 2, 2)
        return
    with pytest.raises(UpcallError, match=message.replace("(", r"\(").replace(")", r"\)")):
        infer_shapes(net, {})


def test_supported_types_cover_what_the_brief_lists():
    assert {
        "Data",
        "Input",
        "Convolution",
        "Pooling",
        "InnerProduct",
        "ReLU",
        "Sigmoid",
        "TanH",
        "LRN",
        "Dropout",
        "Concat",
        "BatchNorm",
        "Scale",
        "Softmax",
        "SoftmaxWithLoss",
        "Accuracy",
        "Flatten",
        "Eltwise",
        "Python",  # upcall's own Python layers (online augmentation)
        "InfogainLoss",  # --class-weights: the train-phase loss
        # issue 22: Caffe 1.0's neuron and reshaping layers (engines/torch/neurons, reshaping)
        *("Power", "AbsVal", "ELU", "PReLU", "BNLL", "Exp", "Log", "Threshold", "Bias"),
        *("Reshape", "Split", "Slice", "Crop", "Reduction", "ArgMax", "Silence", "Tile"),
        # issue 22: vision layers, losses and data layers (engines/torch/vision, losses)
        *("Deconvolution", "SPP", "MVN", "Embed", "EuclideanLoss", "SigmoidCrossEntropyLoss"),
        *("HingeLoss", "MultinomialLogisticLoss", "ImageData", "HDF5Data", "DummyData"),
    } <= SUPPORTED_TYPES


def test_supported_types_are_what_the_torch_engine_runs():
    from upcall.engines.torch.layers import INPUT_TYPES, LAYERS

    # the data layers and Input are fed by the engine (its feeders), not built as layers
    assert set(LAYERS) | INPUT_TYPES == SUPPORTED_TYPES


def test_pair_reads_caffes_spatial_fields():
    p = caffe_pb2.ConvolutionParameter(kernel_size=[3], stride=[1, 2], pad_h=1, pad_w=0)
    assert pair(p, "kernel_size", 0) == (3, 3)
    assert pair(p, "stride", 1) == (1, 2)
    assert pair(p, "pad", 0) == (1, 0)
    assert pair(p, "dilation", 1) == (1, 1)
    assert pair(caffe_pb2.PoolingParameter(kernel_h=2, kernel_w=5), "kernel_size", 0) == (2, 5)
    with pytest.raises(ValueError, match="kernel_size: 3 values"):
        pair(caffe_pb2.ConvolutionParameter(kernel_size=[3, 3, 3]), "kernel_size", 0)


def test_cost_counts_multiply_adds_and_parameters():
    net = ns.net(
        "x",
        [
            ns.input_layer("in", (1, 2, 4, 4)),
            ns.conv("c", "data", 3, kernel=3, pad=1),
            ns.scale("s", "c"),
            ns.ip("fc", "c", 5),
        ],
    )
    macs, params = cost(net, infer_shapes(net, {}))
    assert macs == 2 * 9 * 3 * 16 + 48 * 5
    assert params == (2 * 9 * 3 + 3) + 3 * 2 + (48 * 5 + 5)


def test_explicit_h_w_fields_win_even_when_zero():
    # Caffe reads pad_h/pad_w whenever either is set, even to 0, ignoring pad.
    net = ns.net(
        "x", [ns.input_layer("in", (1, 1, 6, 6)), ns.pool("p", "data", kernel=3, stride=1)]
    )
    net.layer[1].pooling_param.pad = 1
    assert infer_shapes(net, {})["p"] == (1, 1, 6, 6)
    net.layer[1].pooling_param.pad_h = 0
    assert infer_shapes(net, {})["p"] == (1, 1, 4, 4)
