"""The torch engine against real Caffe 1.0: same prototxt, same .caffemodel, same input.

Forward: every blob of the AlexNet, GoogLeNet and WhaleNet deploy nets matches pycaffe's within
1e-4 of the blob's largest magnitude, from a .caffemodel written by upcall and loaded by Caffe.
Training: three iterations of every solver type (with momentum, weight decay, lr_mult 2 biases,
a step lr change, BatchNorm statistics, iter_size, L1 and gradient clipping) give the same
weights, and .solverstate files go both ways.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from upcall.engines.torch import CaffeNet, CaffeSolver, load_caffemodel, save_caffemodel
from upcall.engines.torch.caffemodel import read_solverstate, save_solverstate
from upcall.network import zoo as networks
from upcall.network.zoo.prepare import DataSource, prepare
from upcall.proto import caffe_pb2, to_text

RTOL = 1e-4

FORWARD_SCRIPT = """
import json, sys
import numpy as np
import caffe
caffe.set_mode_cpu()
d, names = {d!r}, {names!r}
blobs = {{}}
for name in names:
    net = caffe.Net(f"{{d}}/{{name}}.prototxt", caffe.TEST, weights=f"{{d}}/{{name}}.caffemodel")
    net.blobs["data"].data[...] = np.load(f"{{d}}/{{name}}-input.npy")
    net.forward()
    keys = list(net.blobs)
    np.savez(f"{{d}}/{{name}}-caffe.npz", *[net.blobs[k].data for k in keys])
    blobs[name] = keys
print(json.dumps(blobs))
"""


def _deploy(name: str, shape: tuple[int, int, int]) -> caffe_pb2.NetParameter:
    data = DataSource("/none/train_db", "/none/val_db", "/none/mean.binaryproto", *shape, 2, "test")
    return prepare(networks.get(name).build(), data)[1]


def _randomise(net: CaffeNet, g: torch.Generator) -> None:
    """He-scaled weights, non-zero biases and BatchNorm statistics, so every layer matters."""
    with torch.no_grad():
        for spec in net.param_specs():
            t = spec.tensor
            if net.layer_types[net.layer_names.index(spec.layer)] == "BatchNorm":
                t.copy_(torch.rand(t.shape, generator=g) * 2 + (1.0 if spec.index else -0.5))
            elif t.dim() > 1:
                t.copy_(torch.randn(t.shape, generator=g) * math.sqrt(2 / (t.numel() / t.shape[0])))
            else:
                t.copy_(
                    torch.randn(t.shape, generator=g) * 0.1
                    + (1.0 if spec.layer.startswith("scale") else 0)
                )


def test_deploy_nets_match_pycaffe(caffe, tmp_path):
    nets = {"alexnet": (1, 256, 256), "googlenet": (1, 256, 256), "whalenet": (1, 129, 30)}
    g = torch.Generator().manual_seed(0)
    ours = {}
    for name, shape in nets.items():
        proto = _deploy(name, shape)
        (tmp_path / f"{name}.prototxt").write_text(to_text(proto))
        net = CaffeNet(proto, phase=caffe_pb2.TEST, seed=1)
        _randomise(net, g)
        save_caffemodel(net, tmp_path / f"{name}.caffemodel")
        x = torch.randn(net.blob_shapes["data"], generator=g) * 50
        np.save(tmp_path / f"{name}-input.npy", x.numpy())
        with torch.no_grad():
            ours[name] = {k: v.numpy() for k, v in net({"data": x}).items()}
    script = FORWARD_SCRIPT.format(d=str(tmp_path), names=list(nets))
    keys = caffe.run_pycaffe(script, binds=(tmp_path,), timeout=300)
    for name in nets:
        theirs = np.load(tmp_path / f"{name}-caffe.npz")
        compared = 0
        for i, key in enumerate(keys[name]):
            if key not in ours[name]:
                assert "_split_" in key, f"{name}: Caffe blob {key} missing here"
                continue
            want, got = theirs[f"arr_{i}"], ours[name][key]
            assert got.shape == want.shape, f"{name}/{key}: {got.shape} vs Caffe {want.shape}"
            scale = max(float(np.abs(want).max()), 1e-12)
            err = float(np.abs(got - want).max()) / scale
            assert err <= RTOL, f"{name}/{key}: relative error {err:.2e}"
            compared += 1
        assert compared == len(ours[name])  # every blob of ours was checked
        assert ours[name]["softmax"].shape == (1, 2)


# The ReLU comes before batch norm so that the conv bias has a gradient (batch norm cancels it),
# and batch norm writes a new blob: Caffe's in-place ReLU would otherwise take its gradient mask
# from the data that later in-place layers wrote over its output.
TRAIN_NET = """
name: "step"
layer { name: "input" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 4 dim: 2 dim: 9 dim: 8 } shape { dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 3 kernel_size: 3 pad: 1
    weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" relu_param { negative_slope: 0.1 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1"
  batch_norm_param { moving_average_fraction: 0.9 } }
layer { name: "scale1" type: "Scale" bottom: "bn1" top: "bn1" scale_param { bias_term: true } }
layer { name: "pool1" type: "Pooling" bottom: "bn1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""

SOLVERS = {
    "sgd": 'type: "SGD" momentum: 0.9 lr_policy: "step" stepsize: 2 gamma: 0.5',
    "nesterov": 'type: "Nesterov" momentum: 0.9 lr_policy: "inv" gamma: 0.1 power: 0.75',
    "adagrad": 'type: "AdaGrad" lr_policy: "fixed"',
    "rmsprop": 'type: "RMSProp" rms_decay: 0.9 lr_policy: "exp" gamma: 0.9',
    "adadelta": 'type: "AdaDelta" momentum: 0.95 delta: 1e-6 lr_policy: "fixed" base_lr: 1.0',
    "adam": 'type: "Adam" momentum: 0.9 momentum2: 0.999 lr_policy: "multistep" stepvalue: 1 gamma: 0.3',
    "sgd-accumulate-l1-clip": 'type: "SGD" momentum: 0.9 lr_policy: "fixed" iter_size: 2 '
    'regularization_type: "L1" clip_gradients: 0.5',
}
STEPS = 3

STEP_SCRIPT = """
import json
import numpy as np
import caffe
caffe.set_mode_cpu()
d, names, steps = {d!r}, {names!r}, {steps}
x, y = np.load(f"{{d}}/x.npy"), np.load(f"{{d}}/y.npy")

def solver_for(name):
    s = caffe.get_solver(f"{{d}}/{{name}}.solver.prototxt")
    s.net.copy_from(f"{{d}}/start.caffemodel")
    s.net.blobs["data"].data[...] = x
    s.net.blobs["label"].data[...] = y
    return s

def save(s, path):
    np.savez(path, *[b.data for layer in s.net.layers for b in layer.blobs])

for name in names:
    s = solver_for(name)
    s.step(steps)
    save(s, f"{{d}}/{{name}}-caffe.npz")
    s.snapshot()
    # Resume from upcall's .solverstate (written after the same steps) and take one more.
    r = solver_for(name)
    r.restore(f"{{d}}/{{name}}-ours.solverstate")
    r.net.blobs["data"].data[...] = x
    r.net.blobs["label"].data[...] = y
    r.step(1)
    save(r, f"{{d}}/{{name}}-resumed.npz")
print(json.dumps(names))
"""


def _train_net(tmp_path, solver: str) -> tuple[CaffeNet, CaffeSolver, caffe_pb2.SolverParameter]:
    from google.protobuf import text_format

    proto = text_format.Parse(TRAIN_NET, caffe_pb2.NetParameter())
    sp = text_format.Merge(  # Merge: a solver's own base_lr overrides the common one
        f'net: "{tmp_path}/train.prototxt" base_lr: 0.1 weight_decay: 0.01 max_iter: 10 '
        f'solver_mode: CPU display: 0 snapshot_prefix: "{tmp_path}/{solver}" {SOLVERS[solver]}',
        caffe_pb2.SolverParameter(),
    )
    net = CaffeNet(proto, phase=caffe_pb2.TRAIN, seed=0)
    load_caffemodel(net, tmp_path / "start.caffemodel")
    return net, CaffeSolver(net.param_specs(), sp), sp


def _train(net: CaffeNet, solver: CaffeSolver, inputs: dict, iterations: range) -> None:
    for it in iterations:
        for _ in range(solver.sp.iter_size):
            net.loss(net(inputs)).backward()
        solver.step(it)


def _blobs(net: CaffeNet) -> list[np.ndarray]:
    return [spec.tensor.detach().numpy().copy() for spec in net.param_specs()]


def _assert_close(ours: list[np.ndarray], theirs, what: str) -> None:
    assert len(theirs.files) == len(ours)
    for i, got in enumerate(ours):
        want = theirs[f"arr_{i}"].reshape(got.shape)
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5, err_msg=f"{what}: blob {i}")


def test_solver_steps_and_solverstates_match_caffe(caffe, tmp_path):
    from google.protobuf import text_format

    (tmp_path / "train.prototxt").write_text(TRAIN_NET)
    start = CaffeNet(
        text_format.Parse(TRAIN_NET, caffe_pb2.NetParameter()), phase=caffe_pb2.TRAIN, seed=3
    )
    save_caffemodel(start, tmp_path / "start.caffemodel")
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 2, 9, 8, generator=g), torch.tensor([0.0, 2.0, 1.0, 2.0])
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "y.npy", y.numpy())
    ours, resumed, states = {}, {}, {}
    for name in SOLVERS:
        net, solver, sp = _train_net(tmp_path, name)
        (tmp_path / f"{name}.solver.prototxt").write_text(to_text(sp))
        _train(net, solver, {"data": x, "label": y}, range(STEPS))
        ours[name] = _blobs(net)
        save_caffemodel(net, tmp_path / f"{name}-ours.caffemodel")
        states[name] = solver.state(STEPS)
        save_solverstate(
            tmp_path / f"{name}-ours.solverstate",
            states[name],
            learned_net=str(tmp_path / f"{name}-ours.caffemodel"),
        )
        _train(net, solver, {"data": x, "label": y}, range(STEPS, STEPS + 1))
        resumed[name] = _blobs(net)
    caffe.run_pycaffe(
        STEP_SCRIPT.format(d=str(tmp_path), names=list(SOLVERS), steps=STEPS),
        binds=(tmp_path,),
        timeout=300,
    )
    for name in SOLVERS:
        _assert_close(
            ours[name], np.load(tmp_path / f"{name}-caffe.npz"), f"{name} after {STEPS} steps"
        )
        _assert_close(resumed[name], np.load(tmp_path / f"{name}-resumed.npz"), f"{name} resumed")
        # Caffe's own .solverstate holds the same history as ours.
        snap, learned = read_solverstate(tmp_path / f"{name}_iter_{STEPS}.solverstate")
        assert (snap.iter, learned) == (STEPS, str(tmp_path / f"{name}_iter_{STEPS}.caffemodel"))
        fresh = _train_net(tmp_path, name)[0]  # a .caffemodel Caffe wrote loads here
        assert len(load_caffemodel(fresh, learned)) == 4
        _assert_close(
            _blobs(fresh), np.load(tmp_path / f"{name}-caffe.npz"), f"{name} Caffe snapshot"
        )
        mine = states[name].history
        assert len(snap.history) == len(mine) == (2 if name in ("adam", "adadelta") else 1) * 9
        learnable = [i for i in range(len(mine)) if i % 9 not in (2, 3, 4)]  # not BatchNorm's
        for i in learnable:
            np.testing.assert_allclose(
                mine[i],
                snap.history[i].reshape(mine[i].shape),
                rtol=2e-4,
                atol=2e-5,
                err_msg=f"{name}: history {i}",
            )
