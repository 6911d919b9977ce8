"""CaffeNet: Caffe's phase/stage filtering, blob plumbing, loss weights, parameters and seeds."""

from __future__ import annotations

import pytest
import torch
from google.protobuf import text_format

from upcall.engines.torch.net import CaffeNet
from upcall.errors import UpcallError
from upcall.network import zoo as networks
from upcall.network.phase import filter_net
from upcall.network.shapes import infer_shapes
from upcall.network.zoo.prepare import DataSource, prepare
from upcall.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST

NET = """
name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "left" type: "InnerProduct" bottom: "conv" top: "left"
  param { lr_mult: 0 } param { lr_mult: 0 }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "right" type: "InnerProduct" bottom: "conv" top: "right"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "sum" type: "Eltwise" bottom: "left" bottom: "right" top: "sum" loss_weight: 0.5 }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "sum" bottom: "label" top: "loss" }
layer { name: "aux" type: "SoftmaxWithLoss" bottom: "right" bottom: "label" top: "aux" loss_weight: 0.3
  exclude { phase: TEST } }
layer { name: "acc" type: "Accuracy" bottom: "sum" bottom: "label" top: "accuracy" include { phase: TEST } }
"""
SHAPES = {"data": (2, 1, 5, 5), "label": (2,)}


def parse(text: str = NET) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return {"data": torch.randn(2, 1, 5, 5, generator=g), "label": torch.tensor([0.0, 2.0])}


def rule(text: str) -> caffe_pb2.NetStateRule:
    return text_format.Parse(text, caffe_pb2.NetStateRule())


def test_filter_keeps_layers_per_phase_and_stage():
    net = parse(
        NET
        + 'layer { name: "d" type: "Softmax" bottom: "sum" top: "p" include { stage: "deploy" } }'
    )
    train = [lp.name for lp in filter_net(net, phase=TRAIN).layer]
    assert train == ["data", "conv", "bn", "relu", "left", "right", "sum", "loss", "aux"]
    test = [lp.name for lp in filter_net(net, phase=TEST, stages=["deploy"]).layer]
    assert test == ["data", "conv", "bn", "relu", "left", "right", "sum", "loss", "acc", "d"]
    bad = parse('layer { name: "x" type: "ReLU" include { phase: TRAIN } exclude { phase: TEST } }')
    with pytest.raises(
        UpcallError, match="layer 'x': give include rules or exclude rules, not both"
    ):
        filter_net(bad, phase=TRAIN)


def test_forward_in_place_shared_blobs_and_outputs():
    net = CaffeNet(parse(), phase=TEST, input_shapes=SHAPES)
    assert net.input_names == ["data", "label"]
    assert net.output_names == ["accuracy", "loss"]  # Caffe's order: by name
    blobs = net(inputs())
    x = torch.relu(net.layer("conv")(inputs()["data"]) / (1e-5) ** 0.5)  # TEST bn: empty statistics
    torch.testing.assert_close(blobs["conv"], x)  # in place: "conv" holds the ReLU output
    torch.testing.assert_close(blobs["sum"], net.layer("left")(x) + net.layer("right")(x))
    assert set(net(inputs(), outputs=["loss"])) == {"loss"}
    assert net.blob_shapes == {
        "data": (2, 1, 5, 5),
        "label": (2,),
        "conv": (2, 4, 3, 3),
        "left": (2, 3),
        "right": (2, 3),
        "sum": (2, 3),
        "loss": (),
        "accuracy": (),
    }


def test_loss_weights_default_and_explicit():
    net = CaffeNet(parse(), phase=TRAIN, input_shapes=SHAPES)
    assert net.loss_weights == {"sum": 0.5, "loss": 1.0, "aux": pytest.approx(0.3)}
    blobs = net(inputs())
    expect = 0.5 * blobs["sum"].sum() + blobs["loss"] + 0.3 * blobs["aux"]
    torch.testing.assert_close(net.loss(blobs), expect)
    no_loss = CaffeNet(
        parse('layer { name: "i" type: "Input" top: "x" input_param { shape { dim: 2 } } }'),
        phase=TEST,
    )
    with pytest.raises(UpcallError, match="no loss in the TEST phase"):
        no_loss.loss(no_loss({"x": torch.ones(2)}))


def test_param_specs_in_caffe_order_with_multipliers():
    net = CaffeNet(parse(), phase=TRAIN, input_shapes=SHAPES)
    specs = [
        (s.layer, s.index, s.lr_mult, s.decay_mult, tuple(s.tensor.shape))
        for s in net.param_specs()
    ]
    assert specs == [
        ("conv", 0, 1.0, 1.0, (4, 1, 3, 3)),
        ("conv", 1, 2.0, 0.0, (4,)),
        ("bn", 0, 0.0, 1.0, (4,)),
        ("bn", 1, 0.0, 1.0, (4,)),
        ("bn", 2, 0.0, 1.0, (1,)),
        ("left", 0, 0.0, 1.0, (3, 36)),
        ("left", 1, 0.0, 1.0, (3,)),
        ("right", 0, 1.0, 1.0, (3, 36)),
        ("right", 1, 1.0, 1.0, (3,)),
    ]
    net.loss(net(inputs())).backward()
    assert net.layer("left").weight.grad is None  # lr_mult 0: no backward, as in Caffe
    assert net.layer("right").weight.grad is not None and net.layer("conv").weight.grad is not None


def test_same_seed_same_weights():
    a, b, c = (CaffeNet(parse(), phase=TRAIN, input_shapes=SHAPES, seed=s) for s in (4, 4, 5))
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.layer("conv").weight, c.layer("conv").weight)


def test_test_net_shares_the_train_nets_weights():
    train = CaffeNet(parse(), phase=TRAIN, input_shapes=SHAPES, seed=1)
    test = CaffeNet(parse(), phase=TEST, input_shapes=SHAPES, seed=2)
    assert test.share_from(train) == ["conv", "bn", "left", "right"]
    with torch.no_grad():
        train.layer("right").weight.add_(1)
    assert test.layer("right").weight is train.layer("right").weight
    train(inputs())  # TRAIN batch norm updates statistics the TEST net now reads
    assert float(test.layer("bn").factor) == 1.0


def test_legacy_net_inputs_and_errors():
    deploy = parse(
        'name: "d" input: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 } '
        'layer { name: "f" type: "InnerProduct" bottom: "data" top: "f" inner_product_param { num_output: 2 } }'
    )
    net = CaffeNet(deploy, phase=TEST)
    assert net.input_names == ["data"] and net.blob_shapes["f"] == (1, 2)
    dims = parse('input: "data" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 3')
    assert CaffeNet(dims, phase=TEST, input_shapes={"data": (4, 2, 3, 3)}).blob_shapes["data"] == (
        4,
        2,
        3,
        3,
    )
    with pytest.raises(UpcallError, match="input blob 'label' needs a shape"):
        CaffeNet(parse(), phase=TEST, input_shapes={"data": (2, 1, 5, 5)})
    with pytest.raises(
        UpcallError, match="layer 'r' reads blob 'nothing', which no earlier layer makes"
    ):
        CaffeNet(parse('layer { name: "r" type: "ReLU" bottom: "nothing" top: "r" }'), phase=TEST)
    with pytest.raises(UpcallError, match=r"inputs \['label'\] were not given"):
        CaffeNet(parse(), phase=TEST, input_shapes=SHAPES)({"data": torch.zeros(2, 1, 5, 5)})


@pytest.mark.parametrize(
    ("name", "shape"),
    [("alexnet", (1, 256, 256)), ("googlenet", (1, 256, 256)), ("whalenet", (1, 129, 30))],
)
def test_blob_shapes_agree_with_upcall_shapes(name, shape):
    data = DataSource("/none/train_db", "/none/val_db", "/none/mean.binaryproto", *shape, 2, "test")
    train_val, _ = prepare(networks.get(name).build(), data)
    batch = next(lp.data_param.batch_size for lp in train_val.layer if lp.type == "Data")
    crop = next(lp.transform_param.crop_size for lp in train_val.layer if lp.type == "Data")
    size = (crop, crop) if crop else shape[1:]
    given = {"data": (batch, shape[0], *size), "label": (batch,)}
    net = CaffeNet(train_val, phase=TRAIN, input_shapes=given)
    assert net.blob_shapes == infer_shapes(train_val, given, phase=TRAIN)
