"""The torch engine's registration: its options and how it starts (before torch is imported)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from upcall.engines.base import Engine, EngineOptions

# cuBLAS is deterministic only with a fixed workspace size; it reads this when its first handle
# is made (the first matrix product on the GPU), so it is set before the engine runs anything (a
# value the user set wins).
CUBLAS_DETERMINISTIC = ":4096:8"


@dataclass(frozen=True)
class Options(EngineOptions):
    """The common options (``gpu``, ``threads``, ``tensorboard``) and ``--deterministic``."""

    # On a GPU: deterministic kernels only (cuDNN autotuning off), so two runs, or a run and its
    # --resume, end with the same weights bit for bit; slower. The CPU is deterministic anyway.
    deterministic: bool = False

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--deterministic",
            action="store_true",
            help="on a GPU, use deterministic kernels only, so --resume ends with exactly the "
            "weights of an unbroken run (slower; the CPU is always deterministic)",
        )


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
