"""The torch engine's registration: its options (``--deterministic``), torch-free; how it starts
is :mod:`upcall.engines.torch.start`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from upcall.engines.base import EngineOptions

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
