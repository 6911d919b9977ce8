"""Class-weighted training loss: InfogainLoss in the train phase, H in the job folder, the same
numbers in the torch engine as in real Caffe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from tests.tinydata import level_dataset
from upcall.engines import get_engine
from upcall.engines.torch import CaffeNet, CaffeSolver, load_caffemodel, save_caffemodel
from upcall.errors import UpcallError
from upcall.job.config import JobConfig
from upcall.job.datasetinfo import load_dataset, tutorial_dataset
from upcall.job.nets import make_job, write_job
from upcall.job.records import read_metrics, train_records, validation_records
from upcall.job.solver import SolverSettings
from upcall.network.classweights import (
    INFOGAIN_FILE,
    ClassWeights,
    parse_class_weights,
    resolve,
)
from upcall.proto import blob_to_array, caffe_pb2, read_binary, to_text

SETTINGS = SolverSettings(base_lr=0.01, epochs=1, seed=1)


def _layers(text: str) -> list[tuple[str, str, tuple[int, ...]]]:
    net = text_format.Parse(text, caffe_pb2.NetParameter())
    return [(x.name, x.type, tuple(r.phase for r in x.include)) for x in net.layer]


def test_parse_and_resolve():
    assert parse_class_weights("none") == ClassWeights()
    assert parse_class_weights("1,3.5") == ClassWeights("manual", (1.0, 3.5))
    for bad in ("1,x", "0,0", "-1,2", "nan,1"):
        with pytest.raises(UpcallError, match="--class-weights"):
            parse_class_weights(bad)
    labels = ("not-whale", "whale")
    got = resolve(ClassWeights("balanced"), [30, 10], labels, where="d")
    assert got.weights == pytest.approx((40 / 60, 40 / 20))
    with pytest.raises(UpcallError, match="every class"):
        resolve(ClassWeights("balanced"), [30, 0], labels, where="d")
    with pytest.raises(UpcallError, match="3 weights; d has 2 classes"):
        resolve(ClassWeights("manual", (1, 2, 3)), [1, 1], labels, where="d")


def test_prototxt_has_train_phase_infogain_and_h_file(tmp_path):
    ds = tutorial_dataset("native", str(tmp_path / "ds"))  # 20307 / 6693 training images
    plain = make_job("whalenet", ds, SETTINGS)
    weighted = make_job("whalenet", ds, SETTINGS, class_weights=ClassWeights("balanced"))
    # Unweighted jobs are what they were: no H file, no InfogainLoss, config says None.
    assert plain.files == {} and plain.config.class_weights is None
    assert "Infogain" not in plain.prototxts["train_val.prototxt"]
    assert weighted.prototxts["deploy.prototxt"] == plain.prototxts["deploy.prototxt"]
    assert weighted.prototxts["solver.prototxt"] == plain.prototxts["solver.prototxt"]
    losses = [x for x in _layers(weighted.prototxts["train_val.prototxt"]) if x[0] == "loss"]
    assert losses == [
        ("loss", "SoftmaxWithLoss", (caffe_pb2.TEST,)),
        ("loss", "InfogainLoss", (caffe_pb2.TRAIN,)),
    ]
    assert 'source: "infogain.binaryproto"' in weighted.prototxts["train_val.prototxt"]
    folder = write_job(weighted, tmp_path / "jobs")
    h = blob_to_array(read_binary(folder / INFOGAIN_FILE, caffe_pb2.BlobProto()), where="h")
    want = [27000 / (2 * 20307), 27000 / (2 * 6693)]
    assert h.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(h[0, 0], np.diag(want), rtol=1e-6)
    config = JobConfig.require(folder)
    assert config.class_weights == ClassWeights("balanced", tuple(config.class_weights.weights))
    assert config.class_weights.weights == pytest.approx(want)
    assert weighted.holds(folder) and not plain.holds(folder)
    # DIGITS cannot be sent the H file: the digits engine says so instead of training unweighted.
    from upcall.digits.fields import custom_network
    from upcall.job.spec import load_job

    with pytest.raises(UpcallError, match=r"infogain\.binaryproto, which a DIGITS server"):
        custom_network(load_job(folder))


INFOGAIN_NET = """
name: "ig"
force_backward: true
layer { name: "input" type: "Input" top: "s" top: "label"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "loss" type: "InfogainLoss" bottom: "s" bottom: "label" top: "loss"
  infogain_loss_param { source: "H.binaryproto" } LOSS_PARAM }
"""


def _write_h(folder, h: np.ndarray) -> None:
    from upcall.proto import array_to_blob

    (folder / "H.binaryproto").write_bytes(
        array_to_blob(h.astype(np.float32)[None, None]).SerializeToString()
    )


def _hand_loss(s, y, h, valid):
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    per = -(h[y] * np.log(np.maximum(p, 1e-20))).sum(1) * valid
    grad = (p * h[y].sum(1, keepdims=True) - h[y]) * valid[:, None]
    n = max(1, valid.sum())
    return per.sum() / n, grad / n


@pytest.mark.parametrize("loss_param", ["", "loss_param { ignore_label: 2 }"])
def test_torch_infogain_equals_hand_computation(tmp_path, loss_param):
    h = np.array([[0.5, 0.1, 0.0], [0.0, 3.0, 0.2], [1.0, 1.0, 1.0]])
    _write_h(tmp_path, h)
    net = CaffeNet(
        text_format.Parse(INFOGAIN_NET.replace("LOSS_PARAM", loss_param), caffe_pb2.NetParameter()),
        phase=caffe_pb2.TRAIN,
        base=tmp_path,
    )
    s = np.array([[1.0, -2.0, 0.5], [0.3, 0.4, -0.1], [2.0, 5.0, 1.0], [-60.0, 60.0, 0.0]])
    y = np.array([0, 1, 2, 0])
    x = torch.tensor(s, dtype=torch.float32, requires_grad=True)
    loss = net.loss(net({"s": x, "label": torch.tensor(y, dtype=torch.float32)}))
    loss.backward()
    valid = (y != 2).astype(float) if loss_param else np.ones(4)
    want, grad = _hand_loss(s, y, h, valid)
    # The last sample's p_0 is e^-120: its log is clamped at log(1e-20), the gradient is not.
    assert loss.item() == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), grad, rtol=1e-5, atol=1e-7)


def test_ignore_label_outside_the_classes(tmp_path):
    # Caffe's usual ignore_label 255 is no row of H: those samples count for nothing
    h = np.array([[0.5, 0.1, 0.0], [0.0, 3.0, 0.2], [1.0, 1.0, 1.0]])
    _write_h(tmp_path, h)
    text = INFOGAIN_NET.replace("LOSS_PARAM", "loss_param { ignore_label: 255 }")
    net = CaffeNet(text_format.Parse(text, caffe_pb2.NetParameter()), phase=caffe_pb2.TRAIN,
                   base=tmp_path)  # fmt: skip
    s = np.array([[1.0, -2.0, 0.5], [0.3, 0.4, -0.1], [2.0, 5.0, 1.0]])
    y = np.array([0, 255, 2])
    loss = net.loss(net({"s": torch.tensor(s, dtype=torch.float32),
                         "label": torch.tensor(y, dtype=torch.float32)}))  # fmt: skip
    want, _ = _hand_loss(s, np.array([0, 0, 2]), h, np.array([1.0, 0.0, 1.0]))
    assert loss.item() == pytest.approx(want, rel=1e-6)


def test_missing_h_file_is_one_line_error(tmp_path):
    with pytest.raises(UpcallError, match=r"H\.binaryproto: cannot read"):
        CaffeNet(
            text_format.Parse(INFOGAIN_NET.replace("LOSS_PARAM", ""), caffe_pb2.NetParameter()),
            phase=caffe_pb2.TRAIN,
            base=tmp_path,
        )


STEP_NET = """
name: "igstep"
layer { name: "input" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 6 dim: 5 } shape { dim: 6 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 }
    bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "InfogainLoss" bottom: "fc" bottom: "label" top: "loss"
  infogain_loss_param { source: "H.binaryproto" } }
"""

STEP_SCRIPT = """
import json
import numpy as np
import caffe
caffe.set_mode_cpu()
s = caffe.get_solver("solver.prototxt")
s.net.copy_from("start.caffemodel")
s.net.blobs["data"].data[...] = np.load("x.npy")
s.net.blobs["label"].data[...] = np.load("y.npy")
loss = float(s.net.forward()["loss"])
s.step(1)
print(json.dumps({"loss": loss, "blobs": [b.data.tolist() for b in s.net.layers[1].blobs]}))
"""


def test_infogain_loss_and_sgd_step_match_real_caffe(caffe, tmp_path):
    _write_h(tmp_path, np.diag([0.6, 2.5]))
    (tmp_path / "net.prototxt").write_text(STEP_NET)
    sp = text_format.Parse(
        'net: "net.prototxt" base_lr: 0.5 momentum: 0.9 weight_decay: 0.01 lr_policy: "fixed" '
        'max_iter: 5 display: 0 solver_mode: CPU snapshot_prefix: "snap"',
        caffe_pb2.SolverParameter(),
    )
    (tmp_path / "solver.prototxt").write_text(to_text(sp))
    proto = text_format.Parse(STEP_NET, caffe_pb2.NetParameter())
    net = CaffeNet(proto, phase=caffe_pb2.TRAIN, seed=2, base=tmp_path)
    save_caffemodel(net, tmp_path / "start.caffemodel")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 5, generator=g) * 2, torch.tensor([0.0, 1, 1, 0, 0, 0])
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", y.numpy())
    load_caffemodel(net, tmp_path / "start.caffemodel")
    solver = CaffeSolver(net.param_specs(), sp)
    loss = net.loss(net({"data": x, "label": y}))
    first = loss.item()
    loss.backward()
    solver.step(0)
    theirs = caffe.run_pycaffe(STEP_SCRIPT, binds=(tmp_path,), cwd=tmp_path, timeout=120)
    assert first == pytest.approx(theirs["loss"], rel=1e-5)
    for spec, want in zip(net.param_specs(), theirs["blobs"], strict=True):
        np.testing.assert_allclose(spec.tensor.detach().numpy(), want, rtol=1e-5, atol=1e-6)


TINY_NET = """name: "tiny"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 } data_param { batch_size: 4 } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.00390625 } data_param { batch_size: 2 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 5 stride: 4 weight_filler { type: "xavier" } } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
  inner_product_param { weight_filler { type: "xavier" } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip1" bottom: "label" top: "accuracy"
  include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
"""


@pytest.fixture(scope="module")
def weighted_job_source(tmp_path_factory):
    """A 12/4-image dataset (9 not-whale : 3 whale in training) and the tiny network."""
    root = tmp_path_factory.mktemp("class-weights")
    level_dataset(root, [0, 0, 0, 1] * 3 + [0, 1, 0, 1])
    (root / "tiny.prototxt").write_text(TINY_NET)
    return root


@pytest.mark.parametrize("engine", ["torch", "caffe"])
def test_tiny_weighted_job_trains(engine, weighted_job_source, tmp_path, request):
    if engine == "caffe":
        request.getfixturevalue("caffe")
    root = weighted_job_source
    job = make_job(
        str(root / "tiny.prototxt"),
        load_dataset(root / "ds"),
        SolverSettings(base_lr=0.01, epochs=2, seed=1),
        class_weights=ClassWeights("balanced"),
    )
    assert job.config.class_weights.weights == pytest.approx((12 / 18, 12 / 6))
    folder = write_job(job, tmp_path)
    get_engine(engine).train(folder)
    records = read_metrics(folder)
    assert len(train_records(records)) >= 1
    final = validation_records(records)[-1]
    assert np.isfinite(final.val_loss) and final.val_auc is not None
    assert json.loads((folder / "config.json").read_text())["class_weights"]["mode"] == "balanced"
