"""The neuron layers and Bias (engines/torch/neurons.py) against real Caffe 1.0, net by net:
forward values and the gradients w.r.t. inputs and parameters (one Caffe process for all)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from tests.engines.torch.caffe_parity import Case, run_parity
from upcall.engines.torch import CaffeNet
from upcall.errors import UpcallError
from upcall.network.shapes import infer_shapes
from upcall.proto import caffe_pb2

X = (2, 3, 4, 5)


def _input(*shapes: tuple[int, ...], tops: tuple[str, ...] = ("x",)) -> str:
    dims = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for s in shapes)
    names = " ".join(f'top: "{t}"' for t in tops)
    return f'layer {{ name: "in" type: "Input" {names} input_param {{ {dims} }} }}\n'


def _one(kind: str, params: str = "", *, bottom="x", top="y", shape=X) -> str:
    return _input(shape) + (
        f'layer {{ name: "l" type: "{kind}" bottom: "{bottom}" top: "{top}" {params} }}\n'
    )


_rng = np.random.default_rng(7)
POSITIVE = {"x": np.abs(_rng.standard_normal(X)) + 0.1}
WIDE = {"x": _rng.standard_normal(X) * 40}  # BNLL's and Sigmoid's saturated ends

CASES = [
    Case("sigmoid", _one("Sigmoid"), inputs=WIDE),
    Case("sigmoid-in-place", _one("Sigmoid", top="x")),
    Case("tanh", _one("TanH")),
    Case("tanh-in-place", _one("TanH", top="x")),
    Case("exp-in-place", _one("Exp", "exp_param { base: 3 }", top="x")),
    Case("prelu-in-place", _one("PReLU", top="x")),
    Case("bias-in-place", _one("Bias", top="x")),
    Case("absval", _one("AbsVal")),
    Case("bnll", _one("BNLL"), inputs=WIDE),
    Case("bnll-small", _one("BNLL")),
    Case("elu", _one("ELU")),
    Case("elu-alpha", _one("ELU", "elu_param { alpha: 0.3 }", top="x")),
    Case("exp", _one("Exp")),
    Case("exp-base-scale-shift", _one("Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }")),
    Case("log", _one("Log"), inputs=POSITIVE),
    Case(
        "log-base-scale-shift",
        _one("Log", "log_param { base: 10 scale: 2 shift: 1 }"),
        inputs=POSITIVE,
    ),
    Case("power", _one("Power", "power_param { power: 2.5 scale: 0.5 shift: 3 }")),
    Case("power-square", _one("Power", "power_param { power: 2 scale: -1.5 shift: 0.5 }")),
    Case("power-no-shift", _one("Power", "power_param { power: 3 scale: 2 }")),
    Case("power-digits-scale", _one("Power", "power_param { scale: 0.00390625 }")),
    Case("power-zero", _one("Power", "power_param { power: 0 scale: 2 shift: 1 }")),
    Case("power-constant", _one("Power", "power_param { power: 3 scale: 0 shift: 2 }")),
    Case("threshold", _one("Threshold"), backward=False),
    Case("threshold-at", _one("Threshold", "threshold_param { threshold: 0.3 }"), backward=False),
    Case("prelu", _one("PReLU")),
    Case("prelu-shared", _one("PReLU", "prelu_param { channel_shared: true }")),
    Case("prelu-2d", _one("PReLU", shape=(4, 6))),
    Case("prelu-filler", _one("PReLU"), load_weights=False),
    Case(
        "prelu-filler-given",
        _one("PReLU", 'prelu_param { filler { type: "constant" value: -0.1 } }'),
        load_weights=False,
    ),
    Case("bias", _one("Bias")),
    Case("bias-axes", _one("Bias", "bias_param { axis: 2 num_axes: -1 }")),
    Case("bias-scalar", _one("Bias", "bias_param { num_axes: 0 }")),
    Case("bias-axis-negative", _one("Bias", "bias_param { axis: -2 num_axes: 2 }")),
    Case(
        "bias-filler",
        _one("Bias", 'bias_param { filler { type: "constant" value: 0.7 } }'),
        load_weights=False,
    ),
    Case(
        "bias-bottom",
        _input(X, (3, 4), tops=("x", "b"))
        + 'layer { name: "l" type: "Bias" bottom: "x" bottom: "b" top: "y" }',
    ),
    # Caffe's in-place Log reads its overwritten input in backward: its gradient is wrong
    Case("log-in-place", _one("Log", top="x"), inputs=POSITIVE),
    # DIGITS's LeNet: the input scaled by a Power layer, trained through a loss only
    Case(
        "power-lenet",
        _input((4, 1, 3, 3), (4,), tops=("data", "label"))
        + 'layer { name: "scale" type: "Power" bottom: "data" top: "scaled"'
        " power_param { scale: 0.00390625 } }\n"
        'layer { name: "ip" type: "InnerProduct" bottom: "scaled" top: "ip"'
        " inner_product_param { num_output: 3 } }\n"
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }',
        inputs={"data": _rng.integers(0, 256, (4, 1, 3, 3)), "label": [0, 2, 1, 2]},
        force_backward=False,
    ),
]


@pytest.fixture(scope="module")
def parity(caffe, tmp_path_factory):
    return run_parity(caffe, tmp_path_factory.mktemp("neurons"), CASES)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.name != "log-in-place"], ids=lambda c: c.name
)
def test_matches_caffe(parity, case):
    parity.check(case.name)


def test_in_place_log_differs_from_caffe_in_its_gradient_only(parity):
    # the documented difference (neurons.py), and proof that the harness sees a difference
    assert [p.split(":")[0] for p in parity.problems["log-in-place"]] == ["gradient of x"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_shape_inference_agrees_with_the_engine(case):
    net = text_format.Parse(case.net, caffe_pb2.NetParameter())
    assert infer_shapes(net, {}) == CaffeNet(net, phase=caffe_pb2.TRAIN).blob_shapes


def test_power_gradient_is_caffes_power_y_over_x():
    # Caffe's shift-0 gradient is power·y/x: NaN at x = 0 (where (scale·x)^(p-1) is 0)
    net = CaffeNet(
        text_format.Parse(
            _one("Power", "power_param { power: 3 }", shape=(1, 2)), caffe_pb2.NetParameter()
        ),
        phase=caffe_pb2.TRAIN,
    )
    x = torch.tensor([[0.0, 2.0]], requires_grad=True)
    net({"x": x})["y"].sum().backward()
    assert torch.isnan(x.grad[0, 0]) and x.grad[0, 1] == 12


@pytest.mark.parametrize(
    ("text", "shape", "message"),
    [
        ('type: "Log" log_param { base: -2 }', X, "base -2 must be positive"),
        ('type: "Exp" exp_param { base: 0 }', X, "base 0 must be positive"),
        ('type: "PReLU"', (5,), "at least 2 axes"),
        ('type: "Bias" bias_param { axis: 1 num_axes: 4 }', X, "does not fit"),
        ('type: "Bias" bias_param { axis: 4 }', X, "axis 4 is out of range"),
    ],
)
def test_bad_parameters_are_one_line_errors(text, shape, message):
    net = text_format.Parse(
        _one("X", shape=shape).replace('type: "X"', text), caffe_pb2.NetParameter()
    )
    with pytest.raises(UpcallError, match=message):
        CaffeNet(net, phase=caffe_pb2.TRAIN)


def test_in_place_absval_is_refused_as_caffe_does():
    net = text_format.Parse(_one("AbsVal", top="x"), caffe_pb2.NetParameter())
    with pytest.raises(UpcallError, match="an AbsVal layer cannot work in place"):
        CaffeNet(net, phase=caffe_pb2.TRAIN)


def test_a_shared_slope_loads_from_a_caffemodel_as_caffe_writes_it(tmp_path):
    # Caffe's Blob::ToProto writes a 0-axis blob with neither `shape` nor num/channels/...
    from upcall.engines.torch import load_caffemodel

    text = _one("PReLU", "prelu_param { channel_shared: true }")
    proto = caffe_pb2.NetParameter()
    proto.layer.add(name="l", type="PReLU").blobs.add(data=[0.7])
    (tmp_path / "m.caffemodel").write_bytes(proto.SerializeToString())
    net = CaffeNet(text_format.Parse(text, caffe_pb2.NetParameter()), phase=caffe_pb2.TEST)
    assert load_caffemodel(net, tmp_path / "m.caffemodel") == ["l"]
    assert net.layer("l").weight.shape == () and net.layer("l").weight.item() == pytest.approx(0.7)
