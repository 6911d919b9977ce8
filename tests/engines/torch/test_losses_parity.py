"""EuclideanLoss, SigmoidCrossEntropyLoss, HingeLoss and MultinomialLogisticLoss against real
Caffe 1.0: loss values, loss weights and gradients, all cases in one Caffe run."""

from __future__ import annotations

import numpy as np
import pytest

from tests.engines.torch.caffe_parity import Case, run_parity

LABELS = np.array([0, 3, 1, 3, 2], np.float32)


def _net(kind: str, params: str = "", *, label: tuple[int, ...] = (5,)) -> str:
    dims = " ".join(f"dim: {d}" for d in label)
    return (
        'layer { name: "in" type: "Input" top: "x" top: "label" '
        f"input_param {{ shape {{ dim: 5 dim: 4 }} shape {{ {dims} }} }} }}\n"
        f'layer {{ name: "loss" type: "{kind}" bottom: "x" bottom: "label" top: "loss" {params} }}\n'
    )


def _probs(seed: int) -> np.ndarray:
    p = np.random.default_rng(seed).random((5, 4)).astype(np.float32) + 0.05
    p[1, 3] = 1e-30  # below MultinomialLogisticLoss's clamp: Caffe's gradient ignores it
    return p / p.sum(1, keepdims=True)


TARGETS = (np.random.default_rng(3).random((5, 4)) > 0.5).astype(np.float32)
IGNORING = TARGETS.copy()
IGNORING[0, :2] = -1

CASES = [
    Case("euclid", _net("EuclideanLoss", label=(5, 4))),
    Case("euclid_shape", _net("EuclideanLoss", "loss_weight: 0.5", label=(5, 2, 2))),
    Case("sigmoid_ce", _net("SigmoidCrossEntropyLoss", label=(5, 4)), inputs={"label": TARGETS}),
    Case(
        "sigmoid_ce_valid",
        _net(
            "SigmoidCrossEntropyLoss",
            "loss_weight: 2 loss_param { ignore_label: -1 normalization: VALID }",
            label=(5, 4),
        ),
        inputs={"label": IGNORING, "x": np.random.default_rng(4).normal(0, 30, (5, 4))},
    ),
    Case(
        "sigmoid_ce_full",
        _net("SigmoidCrossEntropyLoss", "loss_param { normalization: FULL }", label=(5, 4)),
        inputs={"label": TARGETS},
    ),
    Case("hinge_l1", _net("HingeLoss"), inputs={"label": LABELS}),
    Case(
        "hinge_l2",
        _net("HingeLoss", "hinge_loss_param { norm: L2 } loss_weight: 3"),
        inputs={"label": LABELS},
    ),
    Case(
        "multinomial",
        _net("MultinomialLogisticLoss", label=(5, 1, 1, 1)),
        inputs={"label": LABELS, "x": _probs(1)},
    ),
]


@pytest.fixture(scope="module")
def parity(caffe, tmp_path_factory):
    return run_parity(caffe, tmp_path_factory.mktemp("losses"), CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_caffe(parity, case):
    parity.check(case.name)
