"""Caffe networks in PyTorch with Caffe's layer and solver semantics (the torch engine's core).

net = CaffeNet(net_param, phase=TRAIN, input_shapes={"data": (N, C, H, W), "label": (N,)}, seed=s)
blobs = net({"data": x, "label": y}); net.loss(blobs).backward()
solver = CaffeSolver(net.param_specs(), solver_param); solver.step(iteration)
save_caffemodel(net, path) / load_caffemodel(net, path); save_solverstate / read_solverstate

The names load lazily (PEP 562), so the engine's registration, ``upcall.engines.torch.options``,
can be imported (for ``--help`` and the flags) without importing torch.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "load_caffemodel": "caffemodel",
    "net_to_proto": "caffemodel",
    "read_solverstate": "caffemodel",
    "save_caffemodel": "caffemodel",
    "save_solverstate": "caffemodel",
    "LAYERS": "layers",
    "CaffeNet": "net",
    "ParamSpec": "net",
    "CaffeSolver": "solver",
    "SolverSnapshot": "solver",
    "learning_rate": "solver",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
