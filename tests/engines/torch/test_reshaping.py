"""The blob-moving layers (engines/torch/reshaping.py) against real Caffe 1.0, net by net:
forward values and the gradients w.r.t. inputs (one Caffe process for all), and shape inference
(network/shaperules.py) equal to what the engine makes."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from tests.engines.torch.caffe_parity import Case, run_parity
from tests.engines.torch.test_neurons import X, _input, _one
from upcall.engines.torch import CaffeNet
from upcall.errors import UpcallError
from upcall.network.shapes import infer_shapes
from upcall.proto import caffe_pb2


def _layer(kind: str, bottoms: tuple[str, ...], tops: tuple[str, ...], params: str = "") -> str:
    b = " ".join(f'bottom: "{n}"' for n in bottoms)
    t = " ".join(f'top: "{n}"' for n in tops)
    return f'layer {{ name: "l" type: "{kind}" {b} {t} {params} }}\n'


def _reshape(params: str, shape=X) -> str:
    return _one("Reshape", f"reshape_param {{ {params} }}", shape=shape)


_rng = np.random.default_rng(3)
TIES = {"x": _rng.integers(0, 3, (2, 3, 4, 5))}  # equal values: Caffe's order decides
TWO = _input(X, (2, 3, 4, 2), tops=("x", "z"))

CASES = [
    Case("reshape", _reshape("shape { dim: 0 dim: -1 }")),
    Case("reshape-range", _reshape("axis: 1 num_axes: 2 shape { dim: 12 }")),
    Case("reshape-append", _reshape("axis: -1 num_axes: 0 shape { dim: 1 }")),
    Case("reshape-copy-infer", _reshape("shape { dim: 0 dim: 0 dim: -1 dim: 2 }")),
    Case("flatten", _one("Flatten")),
    Case("flatten-range", _one("Flatten", "flatten_param { axis: 2 end_axis: 3 }")),
    Case("flatten-negative", _one("Flatten", "flatten_param { axis: 0 end_axis: -2 }")),
    Case("split", _input(X) + _layer("Split", ("x",), ("a", "b", "c"))),
    Case(
        "slice", _input(X) + _layer("Slice", ("x",), ("a", "b"), "slice_param { slice_point: 1 }")
    ),
    Case("slice-equal", _input(X) + _layer("Slice", ("x",), ("a", "b", "c"))),
    Case(
        "slice-dim",
        _input(X)
        + _layer(
            "Slice",
            ("x",),
            ("a", "b", "c"),
            "slice_param { slice_dim: 2 slice_point: 1 slice_point: 3 }",
        ),
    ),
    Case(
        "slice-axis-negative",
        _input(X) + _layer("Slice", ("x",), ("a", "b"), "slice_param { axis: -1 slice_point: 4 }"),
    ),
    Case("concat", _input(X, (2, 1, 4, 5), tops=("x", "z")) + _layer("Concat", ("x", "z"), ("y",))),
    Case(
        "concat-axis", TWO + _layer("Concat", ("x", "z", "x"), ("y",), "concat_param { axis: -1 }")
    ),
    Case(
        "concat-dim", TWO + _layer("Concat", ("x", "z"), ("y",), "concat_param { concat_dim: 3 }")
    ),
    Case(
        "crop",
        _input((2, 3, 8, 9), (2, 3, 5, 4), tops=("x", "z"))
        + _layer("Crop", ("x", "z"), ("y",), "crop_param { offset: 1 offset: 2 }"),
    ),
    Case(
        "crop-one-offset",
        _input((2, 3, 8, 9), (1, 2, 5, 4), tops=("x", "z"))
        + _layer("Crop", ("x", "z"), ("y",), "crop_param { axis: 1 offset: 1 }"),
    ),
    Case(
        "crop-no-offset",
        _input((2, 3, 8, 9), (2, 3, 5, 4), tops=("x", "z")) + _layer("Crop", ("x", "z"), ("y",)),
    ),
    Case("reduction", _one("Reduction")),
    Case("reduction-asum", _one("Reduction", "reduction_param { operation: ASUM axis: 1 }")),
    Case(
        "reduction-sumsq",
        _one("Reduction", "reduction_param { operation: SUMSQ axis: 2 coeff: 0.5 }"),
    ),
    Case(
        "reduction-mean", _one("Reduction", "reduction_param { operation: MEAN axis: -1 coeff: 2 }")
    ),
    Case("argmax", _one("ArgMax", shape=(4, 7)), backward=False),
    Case(
        "argmax-top3-values",
        _one("ArgMax", "argmax_param { top_k: 3 out_max_val: true }"),
        backward=False,
    ),
    Case("argmax-ties", _one("ArgMax", "argmax_param { top_k: 4 }"), inputs=TIES, backward=False),
    Case(
        "argmax-axis",
        _one("ArgMax", "argmax_param { axis: 1 top_k: 2 }"),
        inputs=TIES,
        backward=False,
    ),
    Case(
        "argmax-axis-values",
        _one("ArgMax", "argmax_param { axis: -2 out_max_val: true top_k: 2 }"),
        backward=False,
    ),
    Case("silence", _input(X) + _layer("Silence", ("x",), ())),
    Case(
        "silence-beside",
        _input(X)
        + _layer("Silence", ("x",), ()).replace('"l"', '"s"')
        + _layer("AbsVal", ("x",), ("y",)),
    ),
    Case("tile", _one("Tile", "tile_param { tiles: 3 }")),
    Case("tile-last", _one("Tile", "tile_param { axis: -1 tiles: 2 }"), phase="TEST"),
]


@pytest.fixture(scope="module")
def parity(caffe, tmp_path_factory):
    return run_parity(caffe, tmp_path_factory.mktemp("reshaping"), CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_caffe(parity, case):
    parity.check(case.name)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_shape_inference_agrees_with_the_engine(case):
    net = text_format.Parse(case.net, caffe_pb2.NetParameter())
    assert infer_shapes(net, {}) == CaffeNet(net, phase=caffe_pb2.TRAIN).blob_shapes


def test_a_net_built_for_one_batch_runs_another():
    import torch

    net = CaffeNet(
        text_format.Parse(_reshape("shape { dim: 0 dim: -1 }"), caffe_pb2.NetParameter()),
        phase=caffe_pb2.TEST,
    )
    assert net({"x": torch.zeros(7, 3, 4, 5)})["y"].shape == (7, 60)


@pytest.mark.parametrize("kind", ["Reshape", "Flatten"])
def test_in_place_reshape_and_flatten_are_refused_as_caffe_does(kind):
    net = text_format.Parse(_one(kind, top="x"), caffe_pb2.NetParameter())
    with pytest.raises(UpcallError, match=f"a {kind} layer cannot work in place"):
        CaffeNet(net, phase=caffe_pb2.TRAIN)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            _layer("Reshape", ("x",), ("y",), "reshape_param { shape { dim: -1 dim: -1 } }"),
            "more than one dim is -1",
        ),
        (
            _layer("Reshape", ("x",), ("y",), "reshape_param { shape { dim: 7 dim: -1 } }"),
            "no -1 dim",
        ),
        (
            _layer("Reshape", ("x",), ("y",), "reshape_param { shape { dim: 2 dim: 3 } }"),
            "does not fit",
        ),
        (
            _layer("Slice", ("x",), ("a", "b"), "slice_param { slice_point: 1 slice_point: 2 }"),
            "2 slice points for 2 tops",
        ),
        (
            _layer(
                "Slice", ("x",), ("a", "b"), "slice_param { axis: 2 slice_point: 4 slice_point: 2 }"
            ),
            "slice points",
        ),
        (_layer("Slice", ("x",), ("a", "b"), "slice_param { axis: 3 }"), "5 does not split into 2"),
        (_layer("ArgMax", ("x",), ("y",), "argmax_param { axis: 1 top_k: 4 }"), "top_k 4 exceeds"),
        (
            _layer("Reduction", ("x",), ("y",), "reduction_param { axis: 4 }"),
            "axis 4 is out of range",
        ),
        (_layer("Tile", ("x",), ("y",), "tile_param { tiles: 0 }"), "tiles 0"),
        (_layer("Crop", ("x", "x"), ("y",), "crop_param { offset: 1 }"), "offset 1"),
        (
            _layer("Crop", ("x", "x"), ("y",), "crop_param { offset: 0 offset: 0 offset: 0 }"),
            "3 offsets for the 2 axes",
        ),
    ],
)
def test_what_caffe_refuses_is_a_one_line_error_in_both_places(layer, message):
    net = text_format.Parse(_input(X) + layer, caffe_pb2.NetParameter())
    with pytest.raises(UpcallError, match=message):
        CaffeNet(net, phase=caffe_pb2.TRAIN)
    with pytest.raises(UpcallError, match=message):
        infer_shapes(net, {})
