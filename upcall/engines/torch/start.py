"""How the torch engine starts: the environment torch reads once, set before it is imported."""

from __future__ import annotations

import os

from upcall.engines.base import Engine
from upcall.engines.torch.options import CUBLAS_DETERMINISTIC, Options


def create(options: Options) -> Engine:
    # OpenMP worker threads that spin between parallel regions lose badly when the cores are
    # shared (measured on 2 busy cores: 0.53 s per WhaleNet update passive, 2.3 s spinning).
    # libgomp reads this once, when torch is first imported, which the import below does; a
    # value the user set wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if options.deterministic and options.gpu is not None:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    from upcall.engines.torch.engine import TorchEngine

    return TorchEngine(options)
