"""The torch inference plan: batch norm and scale folded into the convolutions give the
unfolded CaffeNet's probabilities up to float32 rounding, and the folds happen where expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.export.test_export import SPREAD, calibrated_deploy
from upcall.engines.torch.net import CaffeNet
from upcall.engines.torch.plan import FoldedConv, Plan
from upcall.inference.torch.predict import TorchPredictor
from upcall.proto import caffe_pb2

ATOL = 1e-5  # float32 outputs; the folded weights are rounded once from float64


@pytest.mark.parametrize("name", ["whalenet", "alexnet"])
def test_folded_plan_gives_the_nets_probabilities(name, tmp_path, rng):
    deploy = calibrated_deploy(name, tmp_path, rng)
    predictor = TorchPredictor(deploy, threads=1)
    x = SPREAD * rng.standard_normal((70, *deploy.input_shape)).astype(np.float32)
    got = predictor.predict(x)
    net = CaffeNet(
        deploy.net, phase=caffe_pb2.TEST, input_shapes={"data": (1, *deploy.input_shape)}
    )
    net.load_state_dict(predictor.net.state_dict())
    with torch.no_grad():
        want = net({"data": torch.from_numpy(x)}, outputs=["softmax"])["softmax"].double().numpy()
    assert np.abs(got - want).max() <= ATOL
    assert np.ptp(want[:, 1]) > 1e-3
    folded = [s for s in predictor.plan.steps if isinstance(s.fn, FoldedConv)]
    if name == "whalenet":  # every conv-bn-scale-relu block is one step
        assert [s.types for s in folded] == [("Convolution", "BatchNorm", "Scale", "ReLU")] * 4
    else:
        assert folded == []  # AlexNet has no batch norm: its plan is the net's own layers
        assert len(Plan(net).steps) == len(net.layers)
