""".caffemodel and .solverstate I/O: round trips, Caffe's legacy blobs and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from upcall.engines.torch.caffemodel import (
    load_caffemodel,
    net_to_proto,
    read_solverstate,
    save_caffemodel,
    save_solverstate,
)
from upcall.engines.torch.net import CaffeNet
from upcall.engines.torch.solver import SolverSnapshot
from upcall.errors import UpcallError
from upcall.proto import array_to_blob, blob_to_array, caffe_pb2

NET = """
name: "io"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } bias_filler { type: "gaussian" } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" } } }
"""


def make(seed: int, text: str = NET) -> CaffeNet:
    return CaffeNet(
        text_format.Parse(text, caffe_pb2.NetParameter()), phase=caffe_pb2.TEST, seed=seed
    )


def test_caffemodel_round_trip_includes_batch_norm_blobs(tmp_path):
    a = make(1)
    with torch.no_grad():
        a.layer("bn").mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
        a.layer("bn").factor.fill_(4.0)
    save_caffemodel(a, tmp_path / "w.caffemodel")
    assert [p.name for p in tmp_path.iterdir()] == ["w.caffemodel"]  # nothing half-written left
    proto = net_to_proto(a)
    assert [(lp.name, lp.type, len(lp.blobs)) for lp in proto.layer] == [
        ("conv", "Convolution", 2),
        ("bn", "BatchNorm", 3),
        ("fc", "InnerProduct", 2),
    ]
    assert list(proto.layer[0].blobs[0].shape.dim) == [3, 2, 3, 3]
    b = make(2)
    assert load_caffemodel(b, tmp_path / "w.caffemodel") == ["conv", "bn", "fc"]
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_layers_missing_on_either_side_are_left_alone(tmp_path):
    a = make(1)
    save_caffemodel(a, tmp_path / "w.caffemodel")
    other = make(3, NET.replace('name: "fc"', 'name: "classifier"'))
    before = other.layer("classifier").weight.clone()
    assert load_caffemodel(other, tmp_path / "w.caffemodel") == ["conv", "bn"]
    assert torch.equal(other.layer("classifier").weight, before)


def test_shape_and_blob_count_mismatches_name_the_layer(tmp_path):
    save_caffemodel(make(1), tmp_path / "w.caffemodel")
    wider = make(1, NET.replace("num_output: 2", "num_output: 5"))
    with pytest.raises(
        UpcallError,
        match=r"w.caffemodel: layer 'fc' blob 0 has shape \[2, 12\], the net needs \[5, 12\]",
    ):
        load_caffemodel(wider, tmp_path / "w.caffemodel")
    no_bias = make(1, NET.replace("num_output: 2", "num_output: 2 bias_term: false"))
    with pytest.raises(UpcallError, match="layer 'fc' has 2 blobs, the net's has 1"):
        load_caffemodel(no_bias, tmp_path / "w.caffemodel")
    (tmp_path / "junk.caffemodel").write_bytes(b"\xff\xff\xff")
    with pytest.raises(UpcallError, match=r"junk\.caffemodel: not a valid NetParameter file"):
        load_caffemodel(make(1), tmp_path / "junk.caffemodel")


def test_legacy_four_axis_and_double_blobs_load(tmp_path):
    net = make(1)
    proto = caffe_pb2.NetParameter()
    fc = proto.layer.add(name="fc", type="InnerProduct")
    weight = fc.blobs.add(num=1, channels=1, height=2, width=12)  # Caffe's old (1, 1, N, K)
    weight.data.extend(np.arange(24, dtype=np.float32).tolist())
    fc.blobs.add(num=1, channels=1, height=1, width=2).double_data.extend([0.5, -0.5])
    (tmp_path / "old.caffemodel").write_bytes(proto.SerializeToString())
    assert load_caffemodel(net, tmp_path / "old.caffemodel") == ["fc"]
    assert torch.equal(net.layer("fc").weight, torch.arange(24.0).reshape(2, 12))
    assert net.layer("fc").bias.tolist() == [0.5, -0.5]
    bad = caffe_pb2.BlobProto(num=1, channels=2, height=2, width=12)
    bad.data.extend([0.0] * 48)
    assert blob_to_array(bad, where="x").shape == (1, 2, 2, 12)
    with pytest.raises(UpcallError, match=r"x: blob of shape \[3\] holds 2 values"):
        blob_to_array(
            caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[3]), data=[1.0, 2.0]), where="x"
        )


def test_array_to_blob_equals_the_schemas_own_encoding(rng):
    for shape in [(0,), (1,), (3, 5), (200, 40)]:
        a = rng.standard_normal(shape).astype(np.float32)
        slow = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=list(shape)))
        slow.data.extend(a.ravel().tolist())
        assert array_to_blob(a) == slow
        assert np.array_equal(blob_to_array(array_to_blob(a), where="x"), a)


def test_solverstate_round_trip(tmp_path):
    history = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1.5], np.float32))
    save_solverstate(
        tmp_path / "s.solverstate", SolverSnapshot(12, 2, history), learned_net="s.caffemodel"
    )
    snap, learned = read_solverstate(tmp_path / "s.solverstate")
    assert (snap.iter, snap.current_step, learned) == (12, 2, "s.caffemodel")
    assert [h.tolist() for h in snap.history] == [h.tolist() for h in history]
    raw = caffe_pb2.SolverState.FromString((tmp_path / "s.solverstate").read_bytes())
    assert list(raw.history[0].shape.dim) == [2, 3]  # Caffe's Blob::ToProto form


def test_v1_caffemodel_loads_by_layer_name(tmp_path):
    # A 2015 .caffemodel keeps its layers (and blobs) in V1's `layers`, legacy 4-D blob shapes.
    a = make(1)
    v1 = caffe_pb2.NetParameter(name="io")
    for layer in net_to_proto(a).layer:
        kind = {"Convolution": "CONVOLUTION", "InnerProduct": "INNER_PRODUCT"}.get(layer.type)
        if kind is None:
            continue
        old = v1.layers.add(name=layer.name, type=caffe_pb2.V1LayerParameter.LayerType.Value(kind))
        for blob in layer.blobs:
            old.blobs.append(array_to_blob(blob_to_array(blob, where="x"), legacy_4d=True))
    (tmp_path / "v1.caffemodel").write_bytes(v1.SerializeToString())
    b = make(2)
    assert load_caffemodel(b, tmp_path / "v1.caffemodel") == ["conv", "fc"]
    assert torch.equal(a.layer("fc").blobs()[0], b.layer("fc").blobs()[0])
