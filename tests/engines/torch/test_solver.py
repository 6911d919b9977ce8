"""CaffeSolver: Caffe's learning-rate policies and update rules, checked by hand on small tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from upcall.engines.torch.net import ParamSpec
from upcall.engines.torch.solver import CaffeSolver, SolverSnapshot, current_step, learning_rate
from upcall.errors import UpcallError
from upcall.proto import caffe_pb2


def solver_param(text: str) -> caffe_pb2.SolverParameter:
    return text_format.Parse(f"base_lr: 0.1 {text}", caffe_pb2.SolverParameter())


@pytest.mark.parametrize(
    ("policy", "iteration", "expect"),
    [
        ('lr_policy: "fixed"', 7, 0.1),
        ('lr_policy: "step" stepsize: 3 gamma: 0.5', 7, 0.1 * 0.5**2),
        (
            'lr_policy: "multistep" stepvalue: 2 stepvalue: 5 stepvalue: 9 gamma: 0.1',
            7,
            0.1 * 0.1**2,
        ),
        ('lr_policy: "exp" gamma: 0.9', 7, 0.1 * 0.9**7),
        ('lr_policy: "inv" gamma: 0.01 power: 0.75', 7, 0.1 * 1.07**-0.75),
        ('lr_policy: "poly" power: 2 max_iter: 10', 7, 0.1 * 0.3**2),
        ('lr_policy: "sigmoid" gamma: -0.5 stepsize: 5', 7, 0.1 / (1 + math.exp(1.0))),
    ],
)
def test_learning_rate_policies(policy, iteration, expect):
    assert learning_rate(solver_param(policy), iteration) == pytest.approx(expect, rel=1e-6)


def test_current_step_and_policy_errors():
    assert current_step(solver_param('lr_policy: "step" stepsize: 3'), 7) == 2
    assert current_step(solver_param('lr_policy: "multistep" stepvalue: 2 stepvalue: 7'), 7) == 2
    with pytest.raises(UpcallError, match="unknown lr_policy 'cosine'"):
        learning_rate(solver_param('lr_policy: "cosine"'), 0)
    with pytest.raises(UpcallError, match="stepsize > 0"):
        learning_rate(solver_param('lr_policy: "step"'), 0)


def one_param(w, *, lr_mult=1.0, decay_mult=1.0) -> ParamSpec:
    return ParamSpec("layer", 0, lr_mult, decay_mult, torch.nn.Parameter(torch.tensor(w)))


def run(spec: ParamSpec, solver: CaffeSolver, grads: list[list[float]]) -> list[list[float]]:
    out = []
    for it, g in enumerate(grads):
        spec.tensor.grad = torch.tensor(g)
        solver.step(it)
        out.append(spec.tensor.detach().tolist())
        assert spec.tensor.grad is None  # step clears the gradient
    return out


def test_sgd_keeps_the_learning_rate_inside_the_velocity():
    spec = one_param([1.0, -2.0], lr_mult=2.0, decay_mult=0.5)
    sp = solver_param('lr_policy: "step" stepsize: 1 gamma: 0.1 momentum: 0.9 weight_decay: 0.2')
    got = run(spec, CaffeSolver([spec], sp), [[0.5, 0.5], [0.5, 0.5]])
    w, v = np.array([1.0, -2.0]), np.zeros(2)
    for it in range(2):
        rate = 0.1 * 0.1**it * 2.0
        v = 0.9 * v + rate * (0.5 + 0.2 * 0.5 * w)  # v = μv + lr·(g + wd·w)
        w = w - v
        np.testing.assert_allclose(got[it], w, rtol=1e-6)


def test_nesterov_adagrad_rmsprop_adadelta_adam_by_hand():
    g = np.array([0.5, -1.0])
    cases = {
        'type: "Nesterov" momentum: 0.9': lambda: 0.1 * g * (1 + 0.9),
        'type: "AdaGrad" delta: 1e-8': lambda: 0.1 * g / (np.abs(g) + 1e-8),
        'type: "RMSProp" rms_decay: 0.9 delta: 1e-8': lambda: (
            0.1 * g / (np.sqrt(0.1 * g * g) + 1e-8)
        ),
        'type: "AdaDelta" momentum: 0.9 delta: 1e-6': lambda: (
            0.1 * g * np.sqrt(1e-6 / (0.1 * g * g + 1e-6))
        ),
        # first step: m = 0.1 g, v = 0.001 g²; correction sqrt(0.001) / 0.1
        'type: "Adam" momentum: 0.9 momentum2: 0.999 delta: 1e-8': lambda: (
            0.1 * math.sqrt(0.001) / 0.1 * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-8)
        ),
    }
    for text, update in cases.items():
        spec = one_param([1.0, 1.0])
        got = run(
            spec, CaffeSolver([spec], solver_param(f'lr_policy: "fixed" {text}')), [g.tolist()]
        )
        np.testing.assert_allclose(got[0], 1.0 - update(), rtol=1e-5, err_msg=text)


def test_iter_size_l1_clipping_and_zero_lr():
    spec, frozen = one_param([1.0, -1.0]), one_param([3.0], lr_mult=0.0)
    sp = solver_param(
        'lr_policy: "fixed" iter_size: 2 weight_decay: 0.5 regularization_type: "L1" clip_gradients: 1.0'
    )
    solver = CaffeSolver([spec, frozen], sp)
    spec.tensor.grad = torch.tensor([3.0, 4.0])  # accumulated over 2 passes; norm 5 → clipped to 1
    frozen.tensor.grad = torch.zeros(1)
    solver.step(0)
    expect = np.array([1.0, -1.0]) - 0.1 * (np.array([0.6, 0.8]) / 2 + 0.5 * np.array([1.0, -1.0]))
    np.testing.assert_allclose(spec.tensor.detach().numpy(), expect, rtol=1e-6)
    assert frozen.tensor.item() == 3.0


def test_state_round_trip_and_mismatch():
    spec = one_param([1.0, 2.0])
    sp = solver_param('lr_policy: "step" stepsize: 2 gamma: 0.5 type: "Adam"')
    solver = CaffeSolver([spec], sp)
    run(spec, solver, [[0.3, -0.2], [0.1, 0.4], [0.2, 0.2]])
    snap = solver.state(3)
    assert (snap.iter, snap.current_step, len(snap.history)) == (3, 1, 2)  # Adam: m and v
    other = CaffeSolver([one_param([1.0, 2.0])], sp)
    assert other.load_state(snap) == 3
    assert all(torch.equal(a, b) for a, b in zip(solver.history, other.history, strict=True))
    with pytest.raises(
        UpcallError, match="has 1 history blobs; this Adam solver on this net needs 2"
    ):
        other.load_state(SolverSnapshot(3, 0, snap.history[:1]))
    with pytest.raises(UpcallError, match=r"history 0 \(layer 'layer' blob 0\) has 3 values"):
        other.load_state(SolverSnapshot(3, 0, (np.zeros(3, np.float32), snap.history[1])))


def test_solver_configuration_errors():
    spec = one_param([1.0])
    with pytest.raises(UpcallError, match="unknown type 'LBFGS'"):
        CaffeSolver([spec], solver_param('type: "LBFGS" lr_policy: "fixed"'))
    with pytest.raises(UpcallError, match="AdaGrad cannot use momentum"):
        CaffeSolver([spec], solver_param('type: "AdaGrad" momentum: 0.9 lr_policy: "fixed"'))
    legacy = CaffeSolver([spec], solver_param('solver_type: ADAM lr_policy: "fixed"'))
    assert legacy.type == "Adam" and len(legacy.history) == 2
