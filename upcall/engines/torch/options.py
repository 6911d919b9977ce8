"""The torch engine's registration: its options and how it starts (before torch is imported)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from upcall.engines.base import Engine, EngineOptions


@dataclass(frozen=True)
class Options(EngineOptions):
    """The torch engine takes only the common options (``gpu``, ``threads``)."""


def create(options: Options) -> Engine:
    # OpenMP worker threads that spin between parallel regions lose badly when the cores are
    # shared (measured on 2 busy cores: 0.53 s per WhaleNet update passive, 2.3 s spinning).
    # libgomp reads this once, when torch is first imported, which the import below does; a
    # value the user set wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from upcall.engines.torch.engine import TorchEngine

    return TorchEngine(options)
