"""WhaleNet's optional levers (label smoothing, the background front end) against real Caffe 1.0:
forward and backward of the whole training net, and three SGD steps from the same weights.

The nets are WhaleNet's own train phase (prepared as for a dataset), fed by Input layers, without
its Dropout (random masks differ between engines; the levers do not touch it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.engines.torch.caffe_parity import Case, run_parity
from upcall.engines.torch import CaffeNet, CaffeSolver, load_caffemodel, save_caffemodel
from upcall.network import build as ns
from upcall.network.phase import filter_net
from upcall.network.zoo.prepare import DataSource, prepare
from upcall.network.zoo.whalenet import whalenet
from upcall.proto import caffe_pb2, to_text

N, H, W = 4, 17, 21
LABELS = np.array([0, 1, 1, 0], np.float32)


def train_net(**levers) -> caffe_pb2.NetParameter:
    """WhaleNet (width 4, 2 blocks, pooling over time) with ``levers``: its TRAIN phase with
    Input layers for data and label, no Dropout."""
    data = DataSource("/none/train_db", "/none/val_db", "/none/mean", 1, H, W, 2, f"{W}x{H}")
    net = whalenet(width=4, blocks=2, time_pool=True, **levers)
    train = filter_net(prepare(net, data)[0], phase=caffe_pb2.TRAIN)
    out = ns.net("levers", [])
    inputs = out.layer.add(name="input", type="Input", top=["data", "label"])
    inputs.input_param.shape.add(dim=[N, 1, H, W])
    inputs.input_param.shape.add(dim=[N])
    out.layer.extend(lay for lay in train.layer if lay.type not in ("Data", "Dropout"))
    return out


CASES = [
    Case("both", to_text(train_net(label_smoothing=0.1, background=7)), inputs={"label": LABELS}),
    Case("smoothing", to_text(train_net(label_smoothing=0.4)), inputs={"label": LABELS}),
    Case("background", to_text(train_net(background=21)), inputs={"label": LABELS}),
]


@pytest.fixture(scope="module")
def parity(caffe, tmp_path_factory):
    return run_parity(caffe, tmp_path_factory.mktemp("levers"), CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forward_and_backward_match_caffe(parity, case):
    parity.check(case.name)


def test_the_smoothed_loss_is_the_cross_entropy_against_smoothed_targets():
    """(1-ε)·CE + ε·mean(-log p) over batch and classes: the loss Caffe's layers add up to."""
    eps = 0.1
    net = CaffeNet(train_net(label_smoothing=eps), phase=caffe_pb2.TRAIN, seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        blobs = net(
            {"data": torch.randn(N, 1, H, W, generator=g), "label": torch.from_numpy(LABELS)}
        )
    logp = torch.log_softmax(blobs["fc"].double(), dim=1)
    targets = torch.full((N, 2), eps / 2, dtype=torch.float64)
    targets[torch.arange(N), torch.from_numpy(LABELS).long()] += 1 - eps
    want = float(-(targets * logp).sum(1).mean())
    assert float(net.loss(blobs)) == pytest.approx(want, rel=1e-5)


STEP_SCRIPT = """
import json
import numpy as np
import caffe
caffe.set_mode_cpu()
d = {d!r}
s = caffe.get_solver(f"{{d}}/solver.prototxt")
s.net.copy_from(f"{{d}}/start.caffemodel")
losses = []
for _ in range({steps}):
    s.net.blobs["data"].data[...] = np.load(f"{{d}}/x.npy")
    s.net.blobs["label"].data[...] = np.load(f"{{d}}/y.npy")
    s.step(1)
    losses.append(0.9 * float(s.net.blobs["loss"].data) + 0.1 * float(s.net.blobs["smooth_loss"].data))
np.savez(f"{{d}}/caffe.npz", *[b.data for layer in s.net.layers for b in layer.blobs])
print(json.dumps(losses))
"""
STEPS = 3


def test_sgd_steps_match_caffe(caffe, tmp_path):
    """Three SGD steps with momentum and weight decay on the net with both levers: the same
    weights and batch-norm statistics as Caffe's, and the same losses (ε = 0.1)."""
    proto = train_net(label_smoothing=0.1, background=7)
    (tmp_path / "train.prototxt").write_text(to_text(proto))
    sp = caffe_pb2.SolverParameter(
        net=str(tmp_path / "train.prototxt"), base_lr=0.05, momentum=0.9, weight_decay=0.001,
        lr_policy="fixed", max_iter=10, display=0, solver_mode=caffe_pb2.SolverParameter.CPU,
        snapshot_prefix=str(tmp_path / "snap"),
    )  # fmt: skip
    (tmp_path / "solver.prototxt").write_text(to_text(sp))
    save_caffemodel(CaffeNet(proto, phase=caffe_pb2.TRAIN, seed=3), tmp_path / "start.caffemodel")
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(N, 1, H, W, generator=g) * 20, torch.from_numpy(LABELS)
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", y.numpy())
    net = CaffeNet(proto, phase=caffe_pb2.TRAIN, seed=0)
    load_caffemodel(net, tmp_path / "start.caffemodel")
    solver = CaffeSolver(net.param_specs(), sp)
    ours = []
    for it in range(STEPS):
        loss = net.loss(net({"data": x, "label": y}))
        loss.backward()
        solver.step(it)
        ours.append(float(loss.detach()))
    theirs = caffe.run_pycaffe(
        STEP_SCRIPT.format(d=str(tmp_path), steps=STEPS), binds=(tmp_path,), timeout=300
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    want = np.load(tmp_path / "caffe.npz")
    blobs = [spec.tensor.detach().numpy() for spec in net.param_specs()]
    assert len(want.files) == len(blobs)
    for i, got in enumerate(blobs):
        np.testing.assert_allclose(
            got, want[f"arr_{i}"].reshape(got.shape), rtol=2e-4, atol=2e-5, err_msg=f"blob {i}"
        )
