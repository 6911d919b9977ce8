"""WhaleNet's levers (label smoothing, the background front end): off, the nets are byte for
byte those of before; on, the layers they add, their checks, and a recipe with both trained by
`upcall fit`, exported in both formats and run by the fully convolutional detector (torch and
ONNX Runtime). Real-Caffe parity: tests/engines/torch/test_whalenet_levers_parity.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from upcall.errors import UpcallError
from upcall.network.load import load_network, parse_net_params
from upcall.network.phase import filter_net
from upcall.network.shapes import infer_shapes
from upcall.network.zoo.prepare import DataSource, prepare
from upcall.network.zoo.whalenet import whalenet
from upcall.proto import caffe_pb2, to_text

FINE = DataSource("/d/train_db", "/d/val_db", "/d/mean.binaryproto", 1, 65, 59, 2, "65×59")

# sha256 (first 16 hex digits) of the builder's net + prepared train_val + deploy text, as
# revision 7b20a1a (before the levers) wrote them: options off must not change a byte.
BEFORE = [
    ({}, "0d157bc530f85423"),
    ({"time_pool": True}, "c35830e723df9bfc"),
    ({"convs": 2, "residual": True, "time_pool": True}, "8f7713a5f721be09"),
    ({"global_pool": "AVE", "width": 8}, "852966bfc7a3ffe0"),
]


def _digest(net: caffe_pb2.NetParameter) -> str:
    train_val, deploy = prepare(net, FINE)
    text = to_text(net) + to_text(train_val) + to_text(deploy)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize(("params", "digest"), BEFORE, ids=lambda v: str(v))
def test_levers_off_leave_todays_nets_byte_identical(params, digest):
    assert _digest(whalenet(**params)) == digest
    assert _digest(whalenet(**params, label_smoothing=0.0, background=0)) == digest


def test_label_smoothing_adds_a_train_only_term_and_keeps_val_and_deploy():
    plain, smooth = whalenet(time_pool=True), whalenet(time_pool=True, label_smoothing=0.2)
    train = {
        lay.name: lay for lay in filter_net(prepare(smooth, FINE)[0], phase=caffe_pb2.TRAIN).layer
    }
    assert list(train["loss"].loss_weight) == [pytest.approx(0.8)]
    assert list(train["smooth_loss"].loss_weight) == [pytest.approx(0.2)]
    assert (train["smooth_prob"].type, train["smooth_log"].type) == ("Softmax", "Log")
    r = train["smooth_loss"].reduction_param
    assert (r.operation, r.axis, r.coeff) == (caffe_pb2.ReductionParameter.MEAN, 0, -1.0)
    val = filter_net(prepare(smooth, FINE)[0], phase=caffe_pb2.TEST)
    (loss,) = [lay for lay in val.layer if lay.type == "SoftmaxWithLoss"]
    assert (list(loss.top), list(loss.loss_weight)) == (["loss"], [])  # the plain val loss
    assert not [lay for lay in val.layer if lay.name.startswith("smooth")]
    assert to_text(prepare(smooth, FINE)[1]) == to_text(prepare(plain, FINE)[1])  # deploy


def test_background_front_end_feeds_two_channels_of_the_same_size():
    deploy = prepare(whalenet(time_pool=True, background=31), FINE)[1]
    shapes = infer_shapes(deploy, {})
    assert shapes["background"] == shapes["foreground"] == shapes["data"] == (1, 1, 65, 59)
    assert shapes["front"] == (1, 2, 65, 59)
    layers = {lay.name: lay for lay in deploy.layer}
    p = layers["background"].pooling_param
    assert (p.pool, p.kernel_h, p.kernel_w, p.stride, p.pad_h, p.pad_w) == (1, 1, 31, 1, 0, 15)
    assert p.HasField("pad_h")  # Caffe reads pad_w only when pad_h is set
    assert list(layers["foreground"].eltwise_param.coeff) == [1.0, -1.0]
    assert list(layers["conv1"].bottom) == ["front"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"background": 4}, "odd width"),
        ({"background": 1}, "odd width"),
        ({"background": -3}, "whole number"),
        ({"background": 1.5}, "whole number"),
        ({"label_smoothing": 1.0}, "[0, 1)"),
        ({"label_smoothing": -0.1}, "[0, 1)"),
        ({"label_smoothing": "x"}, "a number"),
    ],
)
def test_bad_lever_values_are_one_line_errors(params, message):
    with pytest.raises(UpcallError, match=r"network whalenet.*") as e:
        load_network("whalenet", params)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_net_param_flags_give_the_levers():
    params = parse_net_params(["label_smoothing=0.05", "background=15", "time_pool=true"])
    assert params == {"label_smoothing": 0.05, "background": 15, "time_pool": True}
    _, net, origin = load_network("whalenet", params)
    assert origin["options"]["background"] == 15
    assert "front" in [lay.name for lay in net.layer]


# ---- end to end: fit, export, fully convolutional detection ---------------------------------
def upcall(*args) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "upcall", *map(str, args)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, f"upcall {args[0]}: {done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def levers_job(tmp_path_factory):
    """`upcall fit` of a recipe with both levers on 400 easy clips (a narrow WhaleNet, 4 epochs)."""
    w = tmp_path_factory.mktemp("levers")
    upcall("synth", w / "data", "--n-train", 400, "--seed", 1, "--workers", 1,
           "--difficulty", "easy")  # fmt: skip
    recipe = {
        "network_params": {"time_pool": True, "width": 8, "label_smoothing": 0.1, "background": 15},
        "epochs": 4,
        "batch_size": 16,
    }
    (w / "recipe.json").write_text(json.dumps(recipe))
    upcall("fit", w / "data", "--out", w / "fit", "--recipe", w / "recipe.json", "--threads", 1)
    return w / "fit" / "jobs" / "whalenet-lr0.01"


def in_process(*args) -> None:
    """A command run here (export and detect import torch once, not per process)."""
    from upcall.cli import main

    assert main([str(a) for a in args]) == 0, args


def _detect(model, recording, out, *extra) -> tuple[str, np.ndarray]:
    in_process("detect", model, recording, "--out", out, "--scores", *extra)
    scoring = json.loads((out / "detect.json").read_text())["scoring"]
    table = np.loadtxt(out / "rec.wav.scores.csv", delimiter=",", skiprows=1)
    return scoring, table[:, 1]


def test_fit_export_and_fully_convolutional_detection(levers_job, easy_recording, tmp_path):
    in_process("export", levers_job, "--format", "onnx", "--out", tmp_path / "m.onnx")
    in_process("export", levers_job, "--format", "caffe", "--out", tmp_path / "caffe")
    got = {
        name: _detect(model, easy_recording, tmp_path / name)
        for name, model in (
            ("job", levers_job),
            ("onnx", tmp_path / "m.onnx"),
            ("caffe", tmp_path / "caffe"),
        )
    }
    assert {scoring for scoring, _ in got.values()} == {"fully-convolutional"}
    for name in ("onnx", "caffe"):
        assert np.abs(got[name][1] - got["job"][1]).max() <= 1e-5, name
    scoring, one = _detect(levers_job, easy_recording, tmp_path / "one", "--per-window",
                           "--step", 0.512)  # fmt: skip
    fcn = got["job"][1]
    assert scoring == "per-window" and one.shape == fcn.shape
    # As for WhaleNet without the levers (tests/detect/test_fcn.py): a window's FCN score
    # differs where the trunk (here also the running mean) sees past the window's edges.
    diff = np.abs(fcn - one)
    print(f"|fcn - per-window|: median {np.median(diff):.3f}, max {diff.max():.3f}")
    assert np.median(diff) <= 0.2 and np.corrcoef(fcn, one)[0, 1] >= 0.75
    assert np.ptp(one) > 0.5
