"""Caffe networks in PyTorch with Caffe's layer and solver semantics (the torch engine's core).

net = CaffeNet(net_param, phase=TRAIN, input_shapes={"data": (N, C, H, W), "label": (N,)}, seed=s)
blobs = net({"data": x, "label": y}); net.loss(blobs).backward()
solver = CaffeSolver(net.param_specs(), solver_param); solver.step(iteration)
save_caffemodel(net, path) / load_caffemodel(net, path); save_solverstate / read_solverstate
"""

from upcall.engines.torch.caffemodel import (
    load_caffemodel,
    net_to_proto,
    read_solverstate,
    save_caffemodel,
    save_solverstate,
)
from upcall.engines.torch.layers import LAYERS
from upcall.engines.torch.net import CaffeNet, ParamSpec, filter_net
from upcall.engines.torch.solver import CaffeSolver, SolverSnapshot, learning_rate

__all__ = [
    "LAYERS",
    "CaffeNet",
    "CaffeSolver",
    "ParamSpec",
    "SolverSnapshot",
    "filter_net",
    "learning_rate",
    "load_caffemodel",
    "net_to_proto",
    "read_solverstate",
    "save_caffemodel",
    "save_solverstate",
]
